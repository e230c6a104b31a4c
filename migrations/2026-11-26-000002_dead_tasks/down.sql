DROP INDEX tasks_dead_idx;
ALTER TABLE tasks DROP COLUMN next_attempt_at;
UPDATE tasks SET status = 'failed' WHERE status = 'dead';
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed'));
