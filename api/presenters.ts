// Rows (plus live workflow status) to the JSON shapes of the REST contract in DESIGN.md.
import type { CommunityRow } from '../src/db/communities.js';
import type { PostRow } from '../src/db/posts.js';
import { failureCode } from '../src/failures.js';
import { workflowIdOf } from '../workflows/trackCommunity.js';
import type { CommunityStatus } from '../workflows/trackCommunity.js';

export interface CommunityJson {
  id: number;
  /** lemmy, rss or mastodon. */
  kind: string;
  ref: string;
  /** rss: the feed; mastodon: the timeline's web URL; lemmy: the community's page. */
  url: string;
  instance: string;
  host: string;
  name: string;
  title: string | null;
  description: string | null;
  icon: string | null;
  banner: string | null;
  nsfw: boolean;
  subscribers: number | null;
  postsCount: number | null;
  postsStored: number | null;
  /** The current interval (fixed, adapted, or backed off after failures); status.reason says why. */
  refreshSeconds: number;
  refreshPolicy: string;
  minRefreshSeconds: number;
  maxRefreshSeconds: number;
  shard: number;
  workflowId: string;
  status: {
    state: string;
    lastSyncAt: string | null;
    nextSyncAt: string | null;
    lastError: { code: string; message: string; at: string | null } | null;
    syncs: number | null;
    reason: string | null;
    consecutiveFailures: number;
    postsPerHour: number | null;
  };
  lastUpdate: string | null;
  createdAt: string;
  updatedAt: string;
}

/**
 * The status the catalog keeps (written by each sync): what lists show, without a Temporal query.
 * Before the first sync has ended, the state is "syncing"; while paused it is "paused", with no
 * next sync.
 */
export function catalogStatus(row: CommunityRow): CommunityStatus {
  return {
    state: row.paused_at ? 'paused' : (row.sync_state ?? 'syncing'),
    lastSyncAt: iso(row.last_update),
    nextSyncAt: row.paused_at ? null : iso(row.next_sync_at),
    lastError: row.last_error
      ? { code: failureCode(row.last_error_code ?? 'SyncFailed'), message: row.last_error, at: iso(row.last_error_at) ?? '' }
      : null,
    syncs: row.syncs,
    postsStored: row.posts_stored,
    refreshSeconds: row.interval_seconds ?? row.refresh_seconds,
    refreshPolicy: row.refresh_policy,
    minRefreshSeconds: row.min_refresh_seconds,
    maxRefreshSeconds: row.max_refresh_seconds,
    reason: row.refresh_reason ?? (row.refresh_policy === 'fixed' ? `fixed: ${row.refresh_seconds} s` : ''),
    consecutiveFailures: row.consecutive_failures,
    postsPerHour: row.posts_per_hour,
  };
}

const iso = (d: Date | string | null | undefined): string | null =>
  d == null ? null : d instanceof Date ? d.toISOString() : new Date(d).toISOString();

/**
 * `live` undefined means Temporal did not answer: state "unknown"; 'stopped' means the workflow
 * is not running (cancelled or terminated by hand; a refresh restarts it; no next sync). Either
 * way the rest is what the catalog knows (as the list shows it).
 */
export function presentCommunity(row: CommunityRow, live: CommunityStatus | 'stopped' | undefined): CommunityJson {
  const status = live === 'stopped' ? undefined : live;
  const rowError = row.last_error
    ? { code: failureCode(row.last_error_code ?? 'SyncFailed'), message: row.last_error, at: iso(row.last_error_at) }
    : null;
  const stored = catalogStatus(row);
  return {
    id: row.id,
    kind: row.kind,
    ref: row.ref,
    url: row.source_url ?? (row.kind === 'lemmy' ? `${row.instance}/c/${row.name}` : row.instance),
    instance: row.instance,
    host: row.host,
    name: row.name,
    title: row.title,
    description: row.description,
    icon: row.icon,
    banner: row.banner,
    nsfw: row.nsfw,
    subscribers: row.subscribers,
    postsCount: row.posts_count,
    postsStored: status ? status.postsStored : row.posts_stored,
    refreshSeconds: status?.refreshSeconds ?? stored.refreshSeconds,
    refreshPolicy: status?.refreshPolicy ?? row.refresh_policy,
    minRefreshSeconds: status?.minRefreshSeconds ?? row.min_refresh_seconds,
    maxRefreshSeconds: status?.maxRefreshSeconds ?? row.max_refresh_seconds,
    shard: row.shard,
    workflowId: workflowIdOf(row.ref),
    status: {
      state: live === 'stopped' ? 'stopped' : (status?.state ?? 'unknown'),
      lastSyncAt: status?.lastSyncAt ?? stored.lastSyncAt,
      nextSyncAt: status ? status.nextSyncAt : live === 'stopped' ? null : stored.nextSyncAt,
      lastError: status?.lastError ?? rowError,
      syncs: status?.syncs ?? stored.syncs,
      reason: status?.reason ?? stored.reason ?? null,
      consecutiveFailures: status?.consecutiveFailures ?? stored.consecutiveFailures,
      postsPerHour: status ? status.postsPerHour : stored.postsPerHour,
    },
    lastUpdate: iso(row.last_update),
    createdAt: iso(row.created_at)!,
    updatedAt: iso(row.updated_at)!,
  };
}

export interface PostJson {
  id: string;
  communityId: number;
  communityRef: string | null;
  lemmyId: number;
  apId: string;
  title: string;
  url: string | null;
  body: string | null;
  author: string | null;
  thumbnail: string | null;
  published: string;
  updated: string | null;
  score: number;
  upvotes: number;
  downvotes: number;
  comments: number;
  nsfw: boolean;
  featured: boolean;
  fetchedAt: string;
}

export function presentPost(row: PostRow, communityRef: string | null): PostJson {
  return {
    id: `${row.community_id}:${row.lemmy_id}`,
    communityId: row.community_id,
    communityRef,
    lemmyId: row.lemmy_id,
    apId: row.ap_id,
    title: row.title,
    url: row.url,
    body: row.body,
    author: row.author,
    thumbnail: row.thumbnail,
    published: row.published_iso ?? iso(row.published)!,
    updated: iso(row.updated),
    score: row.score,
    upvotes: row.upvotes,
    downvotes: row.downvotes,
    comments: row.comments,
    nsfw: row.nsfw,
    featured: row.featured,
    fetchedAt: iso(row.fetched_at)!,
  };
}
