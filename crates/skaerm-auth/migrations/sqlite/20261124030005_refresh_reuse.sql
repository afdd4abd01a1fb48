-- The refresh secret a session had before its last rotation, and when it rotated: a spent
-- secret presented again (after a short grace for two tabs refreshing at once) means it was
-- copied, and the session is revoked.
ALTER TABLE auth_sessions ADD COLUMN previous_refresh_hash BLOB;
ALTER TABLE auth_sessions ADD COLUMN rotated_at_ms BIGINT;
