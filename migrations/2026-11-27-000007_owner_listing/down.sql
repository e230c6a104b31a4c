DROP INDEX IF EXISTS tasks_owner_id_idx;
