-- Runtime configuration from the admin page and /api/admin.

-- Tracking paused (the workflow waits for `resume`, no syncs): lists show it, and a workflow
-- started again for this row (a refresh of a stopped one) starts paused.
alter table communities add column paused_at timestamptz;

-- What needs an operator's eye: failing, not found, dormant or paused (the admin list, keyset by id).
create index communities_attention on communities (id desc)
  where sync_state in ('failing', 'not_found', 'dormant') or paused_at is not null;

-- A host's own request rate, overriding INSTANCE_REQUESTS_PER_SECOND for it. Read by the
-- statement that reserves each request's slot (instance_budget), so every worker uses a change
-- from its next request on.
create table instance_budget_overrides (
  host                text primary key,
  requests_per_second double precision not null check (requests_per_second >= 0.01 and requests_per_second <= 1000),
  updated_at          timestamptz not null default now()
);
