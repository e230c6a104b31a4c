-- One row per task, written when the task is accepted and updated as it runs.
CREATE TABLE tasks (
    id            uuid PRIMARY KEY,
    kind          text        NOT NULL,
    status        text        NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    -- The payload is either inline (small) or an object key in the bucket (large).
    payload       bytea,
    payload_key   text,
    payload_size  bigint      NOT NULL,
    result        bytea,
    result_key    text,
    result_size   bigint,
    error         text,
    attempts      integer     NOT NULL DEFAULT 0,
    -- The node that accepted the task, and the node that (last) ran it.
    submitted_by  text        NOT NULL,
    node          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (payload IS NULL OR payload_key IS NULL)
);

CREATE INDEX tasks_status_idx ON tasks (status);
CREATE INDEX tasks_created_at_idx ON tasks (created_at);
