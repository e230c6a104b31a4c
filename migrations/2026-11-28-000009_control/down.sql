DROP TABLE schedules;
DROP INDEX outbox_parked_idx;
DROP TABLE paused;
DROP TABLE task_keys;
DROP INDEX tasks_owner_unfinished_idx;
CREATE INDEX tasks_owner_unfinished_idx ON tasks (owner)
    WHERE status IN ('queued', 'running') AND owner IS NOT NULL;
DROP INDEX tasks_unfinished_idx;
CREATE INDEX tasks_unfinished_idx ON tasks (status) WHERE status IN ('queued', 'running');
ALTER TABLE tasks DROP COLUMN key;
ALTER TABLE tasks DROP COLUMN run_at;
ALTER TABLE tasks DROP COLUMN priority;
DELETE FROM tasks WHERE status IN ('scheduled', 'cancelled');
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead'));
