-- Reviews of forge changes: which project and merge/pull request, which
-- round, and whether results go back to the forge.
ALTER TABLE reviews ADD COLUMN project_id TEXT;
ALTER TABLE reviews ADD COLUMN change_number BIGINT;
ALTER TABLE reviews ADD COLUMN round_number BIGINT NOT NULL DEFAULT 1;
ALTER TABLE reviews ADD COLUMN send_to_platform BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX reviews_by_change ON reviews (project_id, change_number, round_number);
