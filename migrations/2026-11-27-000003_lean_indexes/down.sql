DROP INDEX IF EXISTS tasks_unfinished_idx;
CREATE INDEX tasks_status_idx ON tasks (status);
