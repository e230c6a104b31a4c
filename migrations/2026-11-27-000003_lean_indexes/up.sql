-- Every row write updated `tasks_status_idx`, an index on a column of five values that no
-- query of the nodes uses. Only unfinished tasks are worth finding by status (stuck or
-- waiting tasks); finished rows, nearly all of them, stay out of this smaller index.
DROP INDEX IF EXISTS tasks_status_idx;
CREATE INDEX tasks_unfinished_idx ON tasks (status) WHERE status IN ('queued', 'running');
