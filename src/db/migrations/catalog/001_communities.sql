-- Tracked communities and their metadata as last seen on their home instance.
create table communities (
  id              bigserial primary key,
  ref             text not null unique,          -- "name@host", host lower-case with :port when not default
  instance        text not null,                 -- "https://lemmy.world"
  host            text not null,
  name            text not null,
  lemmy_id        bigint,
  actor_id        text,
  title           text,
  description     text,
  icon            text,
  banner          text,
  nsfw            boolean not null default false,
  subscribers     integer,
  posts_count     integer,                       -- Lemmy's own count of posts in the community
  refresh_seconds integer not null check (refresh_seconds between 1 and 86400),
  shard           integer not null,              -- logical shard, fixed at creation
  last_update     timestamptz,                   -- last successful sync
  last_error      text,
  last_error_code text,
  last_error_at   timestamptz,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now()
);
create index communities_shard on communities (shard);

-- Physical post-shard nodes. URLs of configured nodes come from the environment at start;
-- nodes added at run time (`npm run shards -- add`) are stored here.
create table shard_nodes (
  name       text primary key,
  url        text not null,
  created_at timestamptz not null default now()
);

-- Logical shard -> physical node. Moving a shard rewrites one row.
create table shard_map (
  shard integer primary key,
  node  text not null references shard_nodes (name)
);

-- Per-instance request budget shared by every worker: the next free request slot per host.
create table instance_budget (
  host      text primary key,
  next_slot timestamptz not null
);
