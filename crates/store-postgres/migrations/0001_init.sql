CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    permissions   TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    digest       TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);

CREATE TABLE runners (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    version           TEXT NOT NULL,
    max_concurrency   BIGINT NOT NULL,
    tags              TEXT NOT NULL,
    status            TEXT NOT NULL,
    active_jobs       BIGINT NOT NULL DEFAULT 0,
    owner_id          TEXT NOT NULL REFERENCES users(id),
    registered_at     BIGINT NOT NULL,
    last_heartbeat_at BIGINT NOT NULL
);
CREATE INDEX runners_by_heartbeat ON runners (last_heartbeat_at);

CREATE TABLE reviews (
    id         TEXT PRIMARY KEY,
    task_id    TEXT NOT NULL UNIQUE,
    repo_url   TEXT NOT NULL,
    base_sha   TEXT NOT NULL,
    head_sha   TEXT NOT NULL,
    branch     TEXT,
    title      TEXT,
    status     TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX reviews_by_created ON reviews (created_at);

CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    review_id        TEXT NOT NULL REFERENCES reviews(id),
    state            TEXT NOT NULL,
    phase            TEXT,
    attempt          BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL,
    runner_id        TEXT,
    required_tags    TEXT NOT NULL,
    lease_expires_at BIGINT,
    expires_at       BIGINT NOT NULL,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    failure_reason   TEXT,
    result           TEXT,
    spec             TEXT NOT NULL,
    log_bytes        BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT
);
CREATE INDEX tasks_by_state ON tasks (state, created_at);
CREATE INDEX tasks_pending ON tasks (created_at, id) WHERE state = 'pending';
CREATE INDEX tasks_by_runner ON tasks (runner_id, state);
CREATE INDEX tasks_by_lease ON tasks (state, lease_expires_at);

CREATE TABLE task_attempts (
    task_id       TEXT NOT NULL REFERENCES tasks(id),
    attempt       BIGINT NOT NULL,
    runner_id     TEXT NOT NULL,
    claimed_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    outcome       TEXT,
    reason        TEXT,
    result_digest TEXT,
    PRIMARY KEY (task_id, attempt)
);

CREATE TABLE task_events (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    detail  TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX task_events_by_task ON task_events (task_id, id);

CREATE TABLE task_logs (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    stream  TEXT NOT NULL,
    text    TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX task_logs_by_task ON task_logs (task_id, seq);
