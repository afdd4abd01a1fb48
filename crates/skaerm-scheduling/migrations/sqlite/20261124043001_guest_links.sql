-- Invited third participants (relative, interpreter, colleague): one-off links to one visit,
-- kept only as the SHA-256 of their secret. Deleted with their visit.
CREATE TABLE guest_links (
    id            TEXT PRIMARY KEY,
    hash          BLOB NOT NULL UNIQUE,
    visit_id      TEXT NOT NULL REFERENCES visits (id) ON DELETE CASCADE,
    display_name  TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('relative', 'interpreter', 'colleague')),
    created_by    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX guest_links_by_visit ON guest_links (visit_id);
