-- Tasks partitioned by the day of their id (UUIDv7 ids begin with their Unix millisecond), so
-- that retention drops a whole day at once instead of deleting rows one by one. Partitions are
-- made ahead and dropped by the nodes (`task_partitions` lists them); rows whose day has no
-- partition (kept unfinished rows of a dropped day, ids from no clock) live in
-- `tasks_default`.

-- The lowest UUIDv7 of a UTC day.
CREATE FUNCTION tasknode_day_floor(day date) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
  SELECT (lpad(to_hex((extract(epoch FROM day::timestamp) * 1000)::bigint), 12, '0')
          || '00000000000000000000')::uuid
$$;

ALTER TABLE tasks RENAME TO tasks_legacy;
ALTER INDEX tasks_pkey RENAME TO tasks_legacy_pkey;
ALTER INDEX tasks_created_at_idx RENAME TO tasks_legacy_created_at_idx;
ALTER INDEX tasks_dead_idx RENAME TO tasks_legacy_dead_idx;
ALTER INDEX tasks_unfinished_idx RENAME TO tasks_legacy_unfinished_idx;
ALTER INDEX tasks_owner_unfinished_idx RENAME TO tasks_legacy_owner_unfinished_idx;
ALTER INDEX tasks_owner_id_idx RENAME TO tasks_legacy_owner_id_idx;

CREATE TABLE tasks (LIKE tasks_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (id);
ALTER TABLE tasks ADD PRIMARY KEY (id);
CREATE INDEX tasks_created_at_idx ON tasks (created_at);
CREATE INDEX tasks_dead_idx ON tasks (finished_at) WHERE status = 'dead';
CREATE INDEX tasks_unfinished_idx ON tasks (status)
    WHERE status IN ('scheduled', 'queued', 'running');
CREATE INDEX tasks_owner_unfinished_idx ON tasks (owner)
    WHERE status IN ('scheduled', 'queued', 'running') AND owner IS NOT NULL;
CREATE INDEX tasks_owner_id_idx ON tasks (owner, id DESC) WHERE owner IS NOT NULL;
CREATE TABLE tasks_default PARTITION OF tasks DEFAULT;

-- The partitions of `tasks` by day: [lo_day, hi_day) (lo_day NULL: from the beginning).
-- `detached` while retention removes one (its objects are being deleted).
CREATE TABLE task_partitions (
    name      text PRIMARY KEY,
    lo_day    date,
    hi_day    date NOT NULL,
    detached  boolean NOT NULL DEFAULT false
);

-- The rows so far: up to the end of today (UTC) they stay where they are, as one partition;
-- any other (an id from no clock) moves to the default partition. An empty table is dropped,
-- and today has a partition of its own. The next two days have theirs: a partition is always
-- made before its day, never while its rows are being written (nodes make the days after).
DO $$
DECLARE
  today date := (now() AT TIME ZONE 'UTC')::date;
  hi uuid := tasknode_day_floor(today + 1);
  first date := today + 1;
  day date;
  name text;
BEGIN
  IF EXISTS (SELECT 1 FROM tasks_legacy) THEN
    INSERT INTO tasks_default SELECT * FROM tasks_legacy WHERE id >= hi;
    DELETE FROM tasks_legacy WHERE id >= hi;
    EXECUTE format('ALTER TABLE tasks ATTACH PARTITION tasks_legacy FOR VALUES FROM (MINVALUE) TO (%L)', hi);
    INSERT INTO task_partitions (name, lo_day, hi_day) VALUES ('tasks_legacy', NULL, today + 1);
  ELSE
    DROP TABLE tasks_legacy;
    first := today;
  END IF;
  FOR day IN SELECT generate_series(first, today + 2, interval '1 day')::date LOOP
    name := 'tasks_p' || to_char(day, 'YYYYMMDD');
    EXECUTE format('CREATE TABLE %I PARTITION OF tasks FOR VALUES FROM (%L) TO (%L)',
                   name, tasknode_day_floor(day), tasknode_day_floor(day + 1));
    INSERT INTO task_partitions (name, lo_day, hi_day) VALUES (name, day, day + 1);
  END LOOP;
END $$;
