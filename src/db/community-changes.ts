// The catalog's change notifications (catalog migration 006): a community removed (payload: its
// id) or the shard map changed (payload `shard_map`), sent on commit. The API's response cache
// listens, so that no replica serves cached pages of a community another replica removed.
import type { Sql } from './pool.js';

export const COMMUNITY_CHANGES_CHANNEL = 'community_changes';

export type CommunityChange = { removed: number } | { shardMap: true } | { ping: string };

/**
 * LISTENs on the catalog (the driver's one listen connection). `onListen` runs after every
 * (re)connect: whatever was sent while the connection was down is lost, so a listener that keeps
 * state must drop it then.
 */
export async function listenCommunityChanges(
  catalog: Sql,
  onChange: (change: CommunityChange) => void,
  onListen: () => void,
): Promise<{ unlisten(): Promise<void> }> {
  return catalog.listen(
    COMMUNITY_CHANGES_CHANNEL,
    (payload) => {
      if (payload.startsWith('ping:')) return onChange({ ping: payload });
      const id = Number(payload);
      onChange(payload !== '' && Number.isSafeInteger(id) ? { removed: id } : { shardMap: true });
    },
    onListen,
  );
}

/** Sends a `ping:…` on the channel: a listener that does not hear it back has lost its connection. */
export async function pingCommunityChanges(catalog: Sql, payload: string): Promise<void> {
  await catalog`select pg_notify(${COMMUNITY_CHANGES_CHANNEL}, ${payload})`;
}
