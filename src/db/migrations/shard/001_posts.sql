-- Posts of the communities whose logical shard maps to this node.
create table posts (
  community_id bigint not null,
  lemmy_id     bigint not null,
  shard        integer not null,               -- logical shard, so a shard can be copied/deleted as a unit
  ap_id        text not null,
  title        text not null,
  url          text,
  body         text,
  author       text,
  thumbnail    text,
  published    timestamptz not null,
  updated      timestamptz,
  score        integer not null default 0,
  upvotes      integer not null default 0,
  downvotes    integer not null default 0,
  comments     integer not null default 0,
  nsfw         boolean not null default false,
  featured     boolean not null default false,
  fetched_at   timestamptz not null default now(),
  primary key (community_id, lemmy_id)
);
-- "newest in a community" (keyset on published, lemmy_id)
create index posts_community_newest on posts (community_id, published desc, lemmy_id desc);
-- "newest overall" across communities (keyset on published, community_id, lemmy_id)
create index posts_newest on posts (published desc, community_id desc, lemmy_id desc);
create index posts_shard on posts (shard);
