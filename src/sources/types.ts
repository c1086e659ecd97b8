// The one interface a source implements (Lemmy, RSS/Atom/JSON Feed, Mastodon…). Each source lives
// in its own folder under src/sources/ and is listed once in registry.ts; the workflow, storage,
// API and stream do not know which kind they deal with.
import { createHash } from 'node:crypto';
import type { PostInput } from '../db/posts.js';
import type { SourceError } from './errors.js';

export const SOURCE_KINDS = ['lemmy', 'rss', 'mastodon'] as const;
export type SourceKind = (typeof SOURCE_KINDS)[number];

/** What an adapter remembers between syncs (cursor, validators, API version). Small, JSON. */
export type SourceState = Record<string, string | number | boolean | null>;

/** A source recognised from what a user gave (a URL or a ref); nothing fetched yet. */
export interface DetectedSource {
  kind: SourceKind;
  /** Identity in the API and the workflow id (`community:<ref>`); Lemmy: `name@host`. */
  ref: string;
  /** Origin requests go to, e.g. "https://lemmy.world". */
  instance: string;
  /** Lower-case host with :port when not default, as in refs. */
  host: string;
  /** Lemmy: the community name; rss: a hash of the feed URL; mastodon: `tag:<tag>` or `user:<name>`. */
  name: string;
  /** rss: the feed URL; mastodon: the timeline's web URL; lemmy: null. */
  url: string | null;
}

/** A tracked source as the catalog row gives it to its adapter. */
export interface SourceTarget extends DetectedSource {
  state: SourceState;
  /** When tracking began: a first sync stores what was published before it, and no older gap is closed. */
  trackedSince: Date;
}

/** What the catalog shows about a source; null where the kind has no such thing. */
export interface SourceMetadata {
  /** The source's own numeric id, if it has one (Lemmy community id). */
  remoteId: number | null;
  /** Canonical URL of the source (ActivityPub id, feed link). */
  actorId: string | null;
  title: string;
  description: string | null;
  icon: string | null;
  banner: string | null;
  nsfw: boolean;
  subscribers: number | null;
  postsCount: number | null;
}

/** What a sync hands an adapter: cancellation, liveness, and what is stored already. */
export interface SyncContext {
  /** Aborted when the activity is cancelled or about to time out: stop every request. */
  signal: AbortSignal;
  /** Call after each request, so a long sync stays alive. */
  heartbeat(detail?: string): void;
  /** Published time (ISO) of the newest stored non-pinned item, if any. */
  newestStored(): Promise<string | undefined>;
  /** Which of these item ids (PostInput.lemmyId) are stored already. */
  storedIds(ids: number[]): Promise<Set<number>>;
  /** Most pages one sync may fetch when paging back to close a gap. */
  maxPages: number;
  /** Extra pages a first sync may fetch (0: only the newest page). */
  backfillPages: number;
}

export interface FetchResult {
  /** Newest items as posts, any order, no duplicates needed (the sync dedupes by lemmyId). */
  posts: PostInput[];
  /** The adapter's state after this fetch; saved only once the posts are stored. */
  state: SourceState;
  /** Metadata when the fetch brought it anyway (a feed's title), else undefined. */
  metadata?: SourceMetadata;
  /** HTTP requests this fetch made. */
  requests: number;
  /** The source said nothing changed (HTTP 304): a cheap, successful sync. */
  notModified?: boolean;
  /** The source asks not to be asked again sooner (RSS <ttl>, Cache-Control max-age, Retry-After), in seconds. */
  minIntervalSeconds?: number;
}

export interface CheckResult {
  metadata?: SourceMetadata;
  /** Initial state (e.g. the API version found, an account's id). */
  state?: SourceState;
}

export interface SourceAdapter {
  readonly kind: SourceKind;
  /** Recognises a URL of this kind without fetching anything; undefined when it is not one. */
  fromUrl(url: URL): DetectedSource | undefined;
  /** A ref of this kind, normalised (as in `/api/communities/:ref`); undefined when not this kind. */
  parseRef(ref: string): DetectedSource | undefined;
  /**
   * At add time: is it there, and is it what we think? Throws a SourceError (permanent types
   * become a 422 for the user) or answers what it learnt.
   */
  check(source: SourceTarget, opts: { signal?: AbortSignal }): Promise<CheckResult>;
  /** Metadata that needs its own request(s); undefined when the kind gets it with fetchNewest. */
  fetchMetadata(source: SourceTarget, ctx: SyncContext): Promise<SourceMetadata | undefined>;
  /** The newest items since the state's cursor, paging back (up to ctx.maxPages) to close gaps. */
  fetchNewest(source: SourceTarget, ctx: SyncContext): Promise<FetchResult>;
}

export type { SourceError };

/**
 * A stable positive integer id (52 bits, a safe JS integer) for an item whose own id is a string
 * (a feed's guid, a Mastodon status id, which exceeds 2^53): posts are keyed by (source, this id).
 */
export function itemIdOf(key: string): number {
  return parseInt(createHash('sha256').update(key).digest('hex').slice(0, 13), 16);
}

/** Short hash naming a URL in refs (`rss:<hash>@host`). */
export function urlHashOf(url: string): string {
  return createHash('sha256').update(url).digest('hex').slice(0, 12);
}

/** Items per hour from the publication times of one page (undefined under 3 items or no spread). */
export function postingRateOf(posts: Pick<PostInput, 'published' | 'featured'>[]): number | undefined {
  const times = posts
    .filter((p) => !p.featured)
    .map((p) => Date.parse(p.published))
    .filter(Number.isFinite);
  if (times.length < 3) return undefined;
  const spanHours = (Math.max(...times) - Math.min(...times)) / 3_600_000;
  if (!(spanHours > 0)) return undefined;
  return (times.length - 1) / spanHours;
}
