-- Back to one table (every partition's rows).
ALTER TABLE tasks RENAME TO tasks_partitioned;
CREATE TABLE tasks (LIKE tasks_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO tasks SELECT * FROM tasks_partitioned;
DROP TABLE tasks_partitioned CASCADE;
DROP TABLE task_partitions;
ALTER TABLE tasks ADD PRIMARY KEY (id);
CREATE INDEX tasks_created_at_idx ON tasks (created_at);
CREATE INDEX tasks_dead_idx ON tasks (finished_at) WHERE status = 'dead';
CREATE INDEX tasks_unfinished_idx ON tasks (status)
    WHERE status IN ('scheduled', 'queued', 'running');
CREATE INDEX tasks_owner_unfinished_idx ON tasks (owner)
    WHERE status IN ('scheduled', 'queued', 'running') AND owner IS NOT NULL;
CREATE INDEX tasks_owner_id_idx ON tasks (owner, id DESC) WHERE owner IS NOT NULL;
DROP FUNCTION tasknode_day_floor(date);
