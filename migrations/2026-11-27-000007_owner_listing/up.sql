-- A client lists its own tasks newest first (ids are UUIDv7: time-ordered), page by page.
CREATE INDEX tasks_owner_id_idx ON tasks (owner, id DESC) WHERE owner IS NOT NULL;
