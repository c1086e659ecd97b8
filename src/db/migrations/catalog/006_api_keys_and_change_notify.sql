-- For the API: a key is looked up by its hash on every request whose key is not cached (api/callers.ts).
create index users_api_key_hash on users (api_key_hash);

-- The API's response cache (api/response-cache.ts) drops a community's cached pages when its
-- posts change (the shard nodes' post_events NOTIFY) and when the community is removed or the
-- shard map changes: those notify here, on commit. The payload is the community id, or `shard_map`.
create function notify_community_change() returns trigger language plpgsql as $$
begin
  if tg_table_name = 'communities' then
    perform pg_notify('community_changes', old.id::text);
  else
    perform pg_notify('community_changes', 'shard_map');
  end if;
  return null;
end
$$;

create trigger communities_removed_notify
  after delete on communities
  for each row execute function notify_community_change();

create trigger shard_map_changed_notify
  after insert or update or delete on shard_map
  for each statement execute function notify_community_change();
