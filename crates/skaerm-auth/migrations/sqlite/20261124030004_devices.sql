-- Registered citizen tablets: pending (code shown, waiting for staff), paired, or revoked.
CREATE TABLE auth_devices (
    id                 TEXT PRIMARY KEY,
    secret_hash        BLOB NOT NULL UNIQUE,
    code_hash          BLOB UNIQUE,
    code_expires_at_ms BIGINT NOT NULL,
    tenant_id          TEXT,
    citizen_id         TEXT,
    label              TEXT,
    paired_by          TEXT,
    paired_at_ms       BIGINT,
    revoked_at_ms      BIGINT,
    created_at_ms      BIGINT NOT NULL
);
CREATE INDEX auth_devices_tenant ON auth_devices (tenant_id);
