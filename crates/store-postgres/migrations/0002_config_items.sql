-- AI configs, review templates and review rules: small admin-edited
-- documents with a typed JSON body owned by the server.
CREATE TABLE config_items (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE UNIQUE INDEX config_items_by_name ON config_items (kind, name);
-- At most one default per kind.
CREATE UNIQUE INDEX config_items_default ON config_items (kind) WHERE is_default;
