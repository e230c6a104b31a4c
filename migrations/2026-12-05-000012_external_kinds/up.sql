-- Workers of any language (issue 26): the external kinds workers registered (kept for
-- external.registration_ttl_secs after a worker last said WORK for them), and each task's
-- progress as its worker reports it.
CREATE TABLE external_kinds (
    name text PRIMARY KEY,
    registered_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE tasks ADD COLUMN progress smallint;
ALTER TABLE tasks ADD COLUMN progress_note text;

-- The role of workers' tokens.
ALTER TABLE tokens DROP CONSTRAINT tokens_role_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_role_check CHECK (role IN ('submit', 'read', 'admin', 'worker'));
