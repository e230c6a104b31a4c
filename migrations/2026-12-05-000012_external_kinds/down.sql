DELETE FROM tokens WHERE role = 'worker';
ALTER TABLE tokens DROP CONSTRAINT tokens_role_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_role_check CHECK (role IN ('submit', 'read', 'admin'));
ALTER TABLE tasks DROP COLUMN progress_note;
ALTER TABLE tasks DROP COLUMN progress;
DROP TABLE external_kinds;
