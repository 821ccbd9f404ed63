-- Push-back of forge reviews: a durable, leased job per review, and per
-- merge/pull request the summary comment and the findings already posted.
ALTER TABLE reviews ADD COLUMN push_state TEXT;
ALTER TABLE reviews ADD COLUMN push_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reviews ADD COLUMN push_next_at BIGINT;
ALTER TABLE reviews ADD COLUMN push_lease_until BIGINT;
ALTER TABLE reviews ADD COLUMN push_error TEXT;
CREATE INDEX reviews_by_push ON reviews (push_state, push_next_at);

CREATE TABLE change_threads (
    project_id          TEXT NOT NULL,
    change_number       BIGINT NOT NULL,
    summary_comment_id  TEXT,
    posted_fingerprints TEXT NOT NULL,
    updated_at          BIGINT NOT NULL,
    PRIMARY KEY (project_id, change_number)
);
