-- GitLab projects and GitHub repositories synced through a platform config.
CREATE TABLE projects (
    id                 TEXT PRIMARY KEY,
    platform_config_id TEXT NOT NULL,
    platform_type      TEXT NOT NULL,
    external_id        TEXT NOT NULL,
    path               TEXT NOT NULL,
    name               TEXT NOT NULL,
    web_url            TEXT NOT NULL,
    clone_url          TEXT NOT NULL,
    default_branch     TEXT,
    enabled            BOOLEAN NOT NULL,
    -- Per-project overrides as JSON; null fields inherit the global settings.
    settings           TEXT NOT NULL,
    webhook_status     TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    synced_at          BIGINT NOT NULL,
    UNIQUE (platform_config_id, external_id)
);
CREATE INDEX projects_by_path ON projects (path);
