-- The outbox: tasks accepted (their row written) whose message the broker has not yet
-- confirmed. A row is leased to one node (`owner`) until `due`; the node deletes it once the
-- broker confirms the task's message. A row past `due` is published by whichever node's relay
-- claims it first (FOR UPDATE SKIP LOCKED), so an accepted task is published even if the node
-- that accepted it is gone.
CREATE TABLE outbox (
    id     uuid        PRIMARY KEY,
    owner  text        NOT NULL,
    due    timestamptz NOT NULL
);
CREATE INDEX outbox_due_idx ON outbox (due);
