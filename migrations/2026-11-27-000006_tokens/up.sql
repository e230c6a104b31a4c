-- Access tokens. Only a hash of each secret is kept (the secret is shown once, at creation);
-- secrets are 256 random bits, so a plain SHA-256 is enough (no password stretching needed).
CREATE TABLE tokens (
    name          text        PRIMARY KEY,
    hash          bytea       NOT NULL UNIQUE,
    role          text        NOT NULL CHECK (role IN ('submit', 'read', 'admin')),
    max_inflight  integer,
    rate          double precision,
    max_payload   bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
-- The token (by name) that submitted each task; NULL for tasks from an open node.
ALTER TABLE tasks ADD COLUMN owner text;
-- A token's unfinished tasks, counted for its max_inflight.
CREATE INDEX tasks_owner_unfinished_idx ON tasks (owner)
    WHERE status IN ('queued', 'running') AND owner IS NOT NULL;
