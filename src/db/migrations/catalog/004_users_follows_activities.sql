-- Users, what they follow, and what they did (their activities), for personal feeds.
create table users (
  id           bigserial primary key,
  name         text not null unique check (name ~ '^[a-z0-9_]{1,64}$'),
  api_key_hash text not null,                 -- sha256 hex of the key; the key is shown once
  created_at   timestamptz not null default now()
);
-- Removing a community (or a user) removes it from every follow list.
create table community_follows (
  user_id      bigint not null references users (id) on delete cascade,
  community_id bigint not null references communities (id) on delete cascade,
  created_at   timestamptz not null default now(),
  primary key (user_id, community_id)
);
-- For the cascade when a community is removed.
create index community_follows_community on community_follows (community_id);
create table user_follows (
  user_id     bigint not null references users (id) on delete cascade,
  followed_id bigint not null references users (id) on delete cascade,
  created_at  timestamptz not null default now(),
  primary key (user_id, followed_id),
  check (user_id <> followed_id)
);
-- "Followers of" counts and the cascade.
create index user_follows_followed on user_follows (followed_id);
-- Objects and targets are refs as text ("community:name@host", "user:bob"), so an activity
-- outlives what it names.
create table activities (
  id        bigserial primary key,
  actor_id  bigint not null references users (id) on delete cascade,
  verb      text not null,
  object    text not null,
  target    text,
  published timestamptz not null default now()
);
-- A user's activities, newest first (keyset on id).
create index activities_actor on activities (actor_id, id desc);
