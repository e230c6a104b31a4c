-- Tasks that used up their attempts are `dead`; `next_attempt_at` says when a retry is due.
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead'));
ALTER TABLE tasks ADD COLUMN next_attempt_at timestamptz;
CREATE INDEX tasks_dead_idx ON tasks (finished_at) WHERE status = 'dead';
