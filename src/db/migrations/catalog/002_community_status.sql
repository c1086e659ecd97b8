-- The outcome of each community's last sync, written by the sync itself, so that the list of
-- communities shows status without asking every workflow (one Temporal query per community does
-- not scale to thousands). A single community's page still asks its workflow for live status.
alter table communities
  add column sync_state      text check (sync_state in ('waiting', 'failing', 'not_found')),
  add column last_attempt_at timestamptz,   -- end of the last sync attempt: the interval counts from here
  add column next_sync_at    timestamptz,
  add column syncs           integer not null default 0,
  add column posts_stored    integer not null default 0;
