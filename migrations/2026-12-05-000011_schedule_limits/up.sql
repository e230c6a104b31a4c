-- Schedules within their token's limits (issue 24): names are per owner ('' for an open
-- node), a token has at most max_schedules of them (100 when NULL), a tick over the owner's
-- limits is skipped and counted, and revoking a token disables its schedules.
ALTER TABLE tokens ADD COLUMN max_schedules integer;

UPDATE schedules SET owner = '' WHERE owner IS NULL;
ALTER TABLE schedules ALTER COLUMN owner SET DEFAULT '';
ALTER TABLE schedules ALTER COLUMN owner SET NOT NULL;
ALTER TABLE schedules DROP CONSTRAINT schedules_pkey;
ALTER TABLE schedules ADD PRIMARY KEY (owner, name);
ALTER TABLE schedules ADD COLUMN skipped bigint NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN last_skip text;
ALTER TABLE schedules ADD COLUMN disabled_at timestamptz;
