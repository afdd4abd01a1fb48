-- The audit log: append-only (UPDATE, DELETE and TRUNCATE are refused by trigger).
CREATE TABLE audit_events (
    id           TEXT PRIMARY KEY,
    at_ms        BIGINT NOT NULL,
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

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;

CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
