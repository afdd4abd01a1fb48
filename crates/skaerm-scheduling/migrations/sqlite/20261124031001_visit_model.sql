-- Issue 4: the full visit model, series, outbox, calendar feeds, series links.

CREATE TABLE visit_series (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants (id),
    legal_basis           TEXT NOT NULL,
    purpose               TEXT NOT NULL DEFAULT '',
    staff_id              TEXT NOT NULL REFERENCES staff (id),
    co_host_id            TEXT REFERENCES staff (id),
    citizen_id            TEXT NOT NULL REFERENCES citizens (id),
    duration_minutes      INTEGER NOT NULL CHECK (duration_minutes BETWEEN 1 AND 480),
    dtstart_local         TEXT NOT NULL,
    rrule                 TEXT NOT NULL,
    ends_before_ms        INTEGER,
    materialised_until_ms INTEGER NOT NULL,
    created_at_ms         INTEGER NOT NULL,
    updated_at_ms         INTEGER NOT NULL
);
CREATE INDEX visit_series_by_tenant ON visit_series (tenant_id);

ALTER TABLE visits ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN co_host_id TEXT REFERENCES staff (id);
ALTER TABLE visits ADD COLUMN planned_end_ms INTEGER NOT NULL DEFAULT 0;
UPDATE visits SET planned_end_ms = planned_start_ms + duration_minutes * 60000;
ALTER TABLE visits ADD COLUMN ended_by TEXT;
ALTER TABLE visits ADD COLUMN outcome_note TEXT;
ALTER TABLE visits ADD COLUMN series_id TEXT REFERENCES visit_series (id);
ALTER TABLE visits ADD COLUMN occurrence_ms INTEGER;
ALTER TABLE visits ADD COLUMN is_exception INTEGER NOT NULL DEFAULT 0;
ALTER TABLE visits ADD COLUMN anonymised INTEGER NOT NULL DEFAULT 0;
CREATE INDEX visits_by_co_host_and_start ON visits (co_host_id, planned_start_ms);
CREATE INDEX visits_by_tenant_and_start ON visits (tenant_id, planned_start_ms);
CREATE INDEX visits_by_status ON visits (status);
CREATE UNIQUE INDEX visits_one_per_occurrence ON visits (series_id, occurrence_ms);

-- Taken (written) first in every booking transaction: serialises bookings per staff member.
ALTER TABLE staff ADD COLUMN booking_version INTEGER NOT NULL DEFAULT 0;

-- One citizen link for a whole series (kept only as the SHA-256 of its secret).
CREATE TABLE series_citizen_links (
    hash          BLOB PRIMARY KEY,
    series_id     TEXT NOT NULL REFERENCES visit_series (id),
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX series_citizen_links_by_series ON series_citizen_links (series_id);

-- Messages to deliver at least once (care-record exports, reminders). `dedup_key` makes
-- enqueueing idempotent; the id is the stable Idempotency-Key sent to receivers.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    dedup_key       TEXT NOT NULL UNIQUE,
    visit_id        TEXT,
    payload         TEXT NOT NULL,
    due_at_ms       INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    delivered_at_ms INTEGER,
    dropped_at_ms   INTEGER,
    last_error      TEXT,
    created_at_ms   INTEGER NOT NULL
);
CREATE INDEX outbox_pending ON outbox (delivered_at_ms, dropped_at_ms, next_attempt_ms);

-- Staff calendar subscriptions: the secret token is kept only as its SHA-256.
CREATE TABLE calendar_feeds (
    hash          BLOB PRIMARY KEY,
    staff_id      TEXT NOT NULL REFERENCES staff (id),
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX calendar_feeds_by_staff ON calendar_feeds (staff_id);
