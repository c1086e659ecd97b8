-- Sources beyond Lemmy (RSS/Atom/JSON Feed, Mastodon), and refresh that adapts to each source.
alter table communities
  add column kind                 text not null default 'lemmy' check (kind in ('lemmy', 'rss', 'mastodon')),
  add column source_url           text,                          -- rss: the feed; mastodon: the timeline's web URL
  add column source_state         jsonb not null default '{}',   -- the adapter's cursor and validators
  add column metadata_fetched_at  timestamptz,                   -- metadata is fetched again once this is stale
  add column refresh_policy       text not null default 'fixed' check (refresh_policy in ('fixed', 'adaptive')),
  add column min_refresh_seconds  integer not null default 60 check (min_refresh_seconds between 1 and 86400),
  add column max_refresh_seconds  integer not null default 3600 check (max_refresh_seconds between 1 and 86400),
  add column interval_seconds     integer,                       -- the interval the workflow chose last
  add column refresh_reason       text,                          -- why, e.g. "adaptive: 0.4 posts/h → 900 s"
  add column consecutive_failures integer not null default 0,
  add column posts_per_hour       double precision,              -- the posting rate the workflow observed
  add column policy_changed_at    timestamptz,                   -- a schedule decided before this is stale
  add constraint communities_refresh_bounds check (min_refresh_seconds <= max_refresh_seconds);

alter table communities drop constraint communities_sync_state_check;
alter table communities add constraint communities_sync_state_check
  check (sync_state in ('waiting', 'failing', 'not_found', 'dormant'));

-- Which hosts answered lately: when every host fails at once, the fault is our connectivity,
-- and sources are not marked down for it.
alter table instance_budget
  add column last_ok_at      timestamptz,
  add column last_failure_at timestamptz;
