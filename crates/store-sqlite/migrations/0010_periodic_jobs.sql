-- Periodic jobs every server replica schedules but that run once per
-- period across them: the last start of each job (epoch milliseconds) and
-- how many times it started. `try_start_periodic` claims a period with one
-- upsert on this row.
CREATE TABLE periodic_jobs (
    name            TEXT PRIMARY KEY,
    last_started_at BIGINT NOT NULL,
    runs            BIGINT NOT NULL
);
