-- Web Push subscriptions: one row per browser subscription, keyed by its
-- push service endpoint (unique: a browser subscribing again updates its
-- row in place), with the browser's public key, its authentication secret
-- (sealed by the server) and the user who subscribed, if any. Deleting a
-- user deletes their subscriptions, like their sessions.
CREATE TABLE push_subscriptions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT REFERENCES users(id) ON DELETE CASCADE,
    endpoint   TEXT NOT NULL UNIQUE,
    p256dh     TEXT NOT NULL,
    auth       TEXT NOT NULL,
    user_agent TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX push_subscriptions_by_user ON push_subscriptions (user_id, created_at, id);
CREATE INDEX push_subscriptions_by_created ON push_subscriptions (created_at, id);
