-- Rate limits shared by every server replica (the login throttle): one row
-- per key and fixed window, counting the attempts in it. `key_digest` is a
-- SHA-256 digest of the limit's name and the client (never an address, an
-- email or a credential); `window_start` is epoch milliseconds, a multiple
-- of the window's length. `hit_rate_limit` counts an attempt with one
-- upsert; a row is useless once `expires_at` (one window past its end) has
-- passed, and the reaper deletes it.
CREATE TABLE rate_limit_windows (
    key_digest   TEXT   NOT NULL,
    window_start BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    hits         BIGINT NOT NULL,
    PRIMARY KEY (key_digest, window_start)
);

CREATE INDEX rate_limit_windows_expires_at ON rate_limit_windows (expires_at);
