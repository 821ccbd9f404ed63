-- Every authenticated webhook delivery and what became of it. The unique
-- delivery id makes redeliveries no-ops (NULL ids never collide).
CREATE TABLE webhook_events (
    id                  TEXT PRIMARY KEY,
    platform            TEXT NOT NULL,
    delivery_id         TEXT,
    event               TEXT NOT NULL,
    platform_config_id  TEXT,
    project_external_id TEXT,
    change_number       BIGINT,
    outcome             TEXT NOT NULL,
    reason              TEXT,
    review_id           TEXT,
    received_at         BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE UNIQUE INDEX webhook_events_by_delivery ON webhook_events (platform, delivery_id);
CREATE INDEX webhook_events_by_time ON webhook_events (received_at);
