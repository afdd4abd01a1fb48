-- The audit log: append-only (UPDATE and DELETE are refused by trigger).
CREATE TABLE audit_events (
    id           TEXT PRIMARY KEY,
    at_ms        INTEGER NOT NULL,
    tenant_id    TEXT NOT NULL,
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT,
    action       TEXT NOT NULL,
    subject_kind TEXT,
    subject_id   TEXT,
    source_ip    TEXT,
    detail       TEXT
);
CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at_ms);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
