-- The change log behind the live stream (/api/stream, /api/ws): one row per post inserted or
-- changed, written in the transaction that writes the post, and a NOTIFY on commit. API processes
-- LISTEN and read `seq > last seen` (src/db/post-events.ts); resume cursors are per-node seqs.
create table post_events (
  seq          bigserial primary key,
  community_id bigint not null,
  lemmy_id     bigint not null,
  at           timestamptz not null default now()
);

-- How far pruning has deleted (a prefix of seqs): a resume cursor below it has lost events.
create table post_events_pruned (
  singleton      boolean primary key default true check (singleton),
  pruned_through bigint not null default 0
);
insert into post_events_pruned default values;

create function record_post_event() returns trigger language plpgsql as $$
begin
  -- Shard moves copy posts between nodes (src/db/sharding/moves.ts sets this): not news.
  if current_setting('lemmy_fetcher.replaying', true) = 'on' then
    return null;
  end if;
  -- The trigger is deferred to commit and takes the node's commit-order lock (held through the
  -- commit only), so seqs become visible in order: once a reader has seen seq N, no smaller seq
  -- commits later, and `seq > cursor` never skips a late committer. 20549 = 0x5045 ("PE").
  perform pg_advisory_xact_lock(20549, 0);
  insert into post_events (community_id, lemmy_id) values (new.community_id, new.lemmy_id);
  -- Identical notifications within a transaction are folded into one by Postgres.
  perform pg_notify('post_events', new.community_id::text);
  return null;
end
$$;

create constraint trigger post_events_on_write
  after insert or update on posts
  deferrable initially deferred
  for each row execute function record_post_event();
