-- Control over work: tasks that wait (`scheduled`: a delay, a time to run at) and tasks
-- cancelled; a priority; idempotency keys; paused lanes and kinds; periodic schedules.
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN
    ('scheduled', 'queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled'));
ALTER TABLE tasks ADD COLUMN priority smallint NOT NULL DEFAULT 0
    CHECK (priority BETWEEN 0 AND 9);
ALTER TABLE tasks ADD COLUMN run_at timestamptz;
ALTER TABLE tasks ADD COLUMN key text;

-- A scheduled task is unfinished too (found when stuck, counted for max_inflight).
DROP INDEX tasks_unfinished_idx;
CREATE INDEX tasks_unfinished_idx ON tasks (status)
    WHERE status IN ('scheduled', 'queued', 'running');
DROP INDEX tasks_owner_unfinished_idx;
CREATE INDEX tasks_owner_unfinished_idx ON tasks (owner)
    WHERE status IN ('scheduled', 'queued', 'running') AND owner IS NOT NULL;

-- Idempotency keys: the first task of each owner's key ('' for an open node), with a hash of
-- its kind and payload, so a second submission with the key gets that task back (or
-- `key_conflict` if it asks for something else). A key older than `keys.retention_secs` may be
-- taken again. Apart from `tasks`, so that the rule holds however the tasks are stored.
CREATE TABLE task_keys (
    owner        text        NOT NULL,
    key          text        NOT NULL,
    task_id      uuid        NOT NULL,
    fingerprint  bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX task_keys_created_idx ON task_keys (created_at);

-- Lanes and kinds paused by an admin (`lane:<name>`, `kind:<name>`): their tasks are accepted
-- and wait in the outbox, never due, until resumed.
CREATE TABLE paused (
    target  text        PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    by      text
);
-- The outbox entries of paused tasks (due 'infinity'), found again on RESUME.
CREATE INDEX outbox_parked_idx ON outbox (id) WHERE due = 'infinity';

-- Periodic tasks. `next_at` is the next tick; the node that takes a due schedule (FOR UPDATE
-- SKIP LOCKED) accepts its task and moves `next_at` on in one transaction: one run per tick
-- across the fleet.
CREATE TABLE schedules (
    name        text        PRIMARY KEY,
    cron        text        NOT NULL,
    tz          text        NOT NULL,
    kind        text        NOT NULL,
    payload     bytea       NOT NULL,
    missed      text        NOT NULL CHECK (missed IN ('once', 'skip')),
    owner       text,
    next_at     timestamptz NOT NULL,
    last_at     timestamptz,
    last_task   uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_next_idx ON schedules (next_at);
