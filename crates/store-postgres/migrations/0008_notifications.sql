-- Notifications: one row per event to deliver through one channel, both
-- the delivery queue (pending rows, leased to a sender like push-back jobs,
-- retried at next_attempt_at) and the delivery history (sent, failed with
-- the last error). The unique dedup key makes an event queued once however
-- many server replicas enqueue it: a summary once per period and channel,
-- a review event once per review and channel. No foreign key on review_id:
-- the history outlives what it reports on, like webhook_events.
CREATE TABLE notifications (
    id              TEXT PRIMARY KEY,
    event           TEXT NOT NULL,
    channel         TEXT NOT NULL,
    review_id       TEXT,
    dedup_key       TEXT NOT NULL UNIQUE,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_by_created ON notifications (created_at);
CREATE INDEX notifications_by_review ON notifications (review_id);
