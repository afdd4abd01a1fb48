-- Roles on local accounts (comma-separated codes), and staff sessions: one row per login,
-- refreshed through a hashed refresh token, revoked on logout.
ALTER TABLE auth_local_accounts ADD COLUMN roles TEXT NOT NULL DEFAULT 'staff';

CREATE TABLE auth_sessions (
    id             TEXT PRIMARY KEY,
    staff_id       TEXT NOT NULL,
    tenant_id      TEXT NOT NULL,
    roles          TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    refresh_hash   BLOB NOT NULL UNIQUE,
    created_at_ms  INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    revoked_at_ms  INTEGER
);
CREATE INDEX auth_sessions_staff ON auth_sessions (staff_id);
