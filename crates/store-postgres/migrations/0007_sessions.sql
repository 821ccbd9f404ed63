-- Browser sessions: the SHA-256 digest of each session cookie (never the
-- token itself), its user, and a sliding expiry. Deleting a user ends
-- their sessions.
CREATE TABLE sessions (
    digest       TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX tasks_by_created ON tasks (created_at, id);

-- The review queued when this one was retried (set at most once, so a
-- review is retried once however often "retry" is pressed).
ALTER TABLE reviews ADD COLUMN retried_as TEXT;
