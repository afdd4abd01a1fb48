-- Municipalities, people and visits. Instants are unix milliseconds (UTC); ids are UUID text.
CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE staff (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    display_name  TEXT NOT NULL,
    team          TEXT,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE citizens (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    display_name  TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE visits (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    legal_basis      TEXT NOT NULL,
    staff_id         TEXT NOT NULL REFERENCES staff (id),
    citizen_id       TEXT NOT NULL REFERENCES citizens (id),
    planned_start_ms INTEGER NOT NULL,
    duration_minutes INTEGER NOT NULL CHECK (duration_minutes BETWEEN 1 AND 480),
    status           TEXT NOT NULL,
    actual_start_ms  INTEGER,
    actual_end_ms    INTEGER,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL
);
CREATE INDEX visits_by_staff_and_start ON visits (staff_id, planned_start_ms);

-- Citizen links are kept only as the SHA-256 of their secret.
CREATE TABLE citizen_links (
    hash          BLOB PRIMARY KEY,
    visit_id      TEXT NOT NULL REFERENCES visits (id),
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX citizen_links_by_visit ON citizen_links (visit_id);
