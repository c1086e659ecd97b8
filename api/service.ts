// What the REST routes and the website share: adding (with the instance check), looking up,
// presenting with live status, paging posts. Both go through these so they behave the same.
import { PrivateAddressError, assertPublicHost } from '../src/net/addresses.js';
import { ping } from '../src/db/pool.js';
import { communitiesPage, communityById, communityByRef, communityRefsByIds, type CommunityRow } from '../src/db/communities.js';
import { communityPosts, newestPosts, type PostCursor } from '../src/db/posts.js';
import { SourceError } from '../src/sources/errors.js';
import type { SourceClients } from '../src/sources/factory.js';
import type { DetectedSource, SourceTarget } from '../src/sources/types.js';
import { changeRefreshPolicy, liveStatus, policyOf, startTracking } from '../src/tracking.js';
import { ApiError, notFound } from './errors.js';
import { catalogStatus, presentCommunity, presentPost, type CommunityJson, type PostJson } from './presenters.js';
import type { ApiDeps } from './deps.js';
import { encodeCommunityCursor, parseRefParam, resolvePolicy, type AddInput, type RefreshFields } from './validation.js';

export interface Services extends ApiDeps {
  sources: SourceClients;
}

export async function findCommunity(s: Services, rawRef: string): Promise<CommunityRow> {
  const lookup = parseRefParam(rawRef, s.sources);
  const row =
    lookup.kind === 'id'
      ? lookup.id <= 2_147_483_647
        ? await communityById(s.catalog, lookup.id)
        : undefined
      : await communityByRef(s.catalog, lookup.ref);
  if (!row) throw notFound();
  return row;
}

export async function withStatus(s: Services, row: CommunityRow): Promise<CommunityJson> {
  return presentCommunity(row, await liveStatus(s, row.ref));
}

export interface CommunitiesPage {
  communities: CommunityJson[];
  next: string | null;
}

/**
 * A page of tracked communities with the status their last sync wrote to the catalog: no
 * Temporal query per community (that does not scale), so it answers while Temporal is down too.
 */
export async function listWithStatus(s: Services, page: { limit: number; before?: number }): Promise<CommunitiesPage> {
  const { rows, nextBeforeId } = await communitiesPage(s.catalog, page.limit, page.before);
  return {
    communities: rows.map((row) => presentCommunity(row, catalogStatus(row))),
    next: nextBeforeId === null ? null : encodeCommunityCursor(nextBeforeId),
  };
}

/**
 * Adds a source: already tracked under one of the refs it may be → that one (200). Otherwise the
 * candidates are checked in order (a Lemmy community or Mastodon timeline before "any URL may be
 * a feed"); the first that checks out is tracked (201). A candidate that is plainly not of its
 * kind gives way to the next; any other failure (not found, unreachable) is the answer.
 */
export async function addCommunity(s: Services, input: AddInput): Promise<{ community: CommunityJson; created: boolean }> {
  for (const candidate of input.candidates) {
    const existing = await communityByRef(s.catalog, candidate.ref);
    if (existing) return { community: await withStatus(s, existing), created: false };
  }
  let firstError: ApiError | undefined;
  for (const candidate of input.candidates) {
    try {
      const checked = await checkSource(s, candidate);
      const { row, created } = await startTracking(s, {
        ...candidate,
        refreshSeconds: input.refreshSeconds,
        policy: input.policy,
        metadata: checked.metadata,
        state: checked.state,
      });
      return { community: await withStatus(s, row), created };
    } catch (err) {
      if (!(err instanceof SourceError)) throw err;
      const apiError = sourceToApi(err, candidate);
      firstError ??= apiError;
      if (!NOT_THIS_KIND.includes(err.type)) throw firstError;
    }
  }
  if (input.candidates.length > 1) {
    throw new ApiError(
      422,
      'unsupported_source',
      `${input.candidates[0].url ?? input.candidates[0].instance} is not a Lemmy community, an RSS/Atom/JSON feed or a Mastodon timeline (${firstError?.message ?? ''})`.slice(
        0,
        500,
      ),
    );
  }
  throw firstError ?? new ApiError(422, 'unsupported_source', 'nothing to track');
}

/** Failures that say "not a source of this kind", so the next kind may still fit. */
const NOT_THIS_KIND: readonly string[] = ['NotLemmyApi', 'UnsupportedSource', 'InvalidResponse'];

/** The add-time check: the host may be reached, and the source is there and is what we think. */
export async function checkSource(s: Services, candidate: DetectedSource) {
  if (!s.config.ALLOW_PRIVATE_INSTANCES) {
    try {
      await assertPublicHost(new URL(candidate.instance).hostname);
    } catch (err) {
      if (err instanceof PrivateAddressError) throw new SourceError('PrivateAddress', err.message);
      throw new SourceError('NetworkError', `cannot resolve ${candidate.host}: ${(err as Error).message}`);
    }
  }
  const target: SourceTarget = { ...candidate, state: {}, trackedSince: new Date() };
  return s.sources.adapter(candidate.kind).check(target, {});
}

function sourceToApi(err: SourceError, c: DetectedSource): ApiError {
  const detail = err.message.slice(0, 300);
  const what = c.url ?? c.instance;
  switch (err.type) {
    case 'CommunityNotFound':
      return new ApiError(422, 'community_not_found', `${c.host} has no community named "${c.name}"`);
    case 'SourceGone':
      return new ApiError(422, 'source_not_found', `${what} was not found (${detail})`);
    case 'NotLemmyApi':
    case 'InvalidResponse':
    case 'ResponseTooLarge':
      return c.kind === 'lemmy'
        ? new ApiError(422, 'not_lemmy', `${c.instance} does not answer like a Lemmy instance (${detail})`)
        : new ApiError(
            422,
            'unsupported_source',
            `${what} does not answer like a ${c.kind === 'rss' ? 'feed' : 'Mastodon server'} (${detail})`,
          );
    case 'UnsupportedSource':
      return new ApiError(422, 'unsupported_source', detail);
    case 'InstanceRequiresLogin':
      return new ApiError(422, 'instance_requires_login', `${c.instance} requires a login to read this`);
    case 'PrivateAddress':
      return new ApiError(
        400,
        'private_instance',
        `${c.host} resolves to a loopback, private or link-local address, which is not allowed (ALLOW_PRIVATE_INSTANCES=false)`,
      );
    case 'RateLimited':
      return new ApiError(422, 'instance_rate_limited', `${c.instance} is rate limiting us; try again in a minute`);
    case 'NetworkError':
    case 'Timeout':
      return new ApiError(422, 'instance_unreachable', `Cannot reach ${c.instance} (${detail})`);
    default:
      return new ApiError(422, 'instance_error', `${c.instance} answered with an error (${detail})`);
  }
}

/** A new refresh policy (or fixed interval), on top of the current one: the API's PATCH and the website's form. */
export async function changeRefresh(s: Services, row: CommunityRow, fields: RefreshFields): Promise<CommunityRow> {
  const change = resolvePolicy(s.config, fields, { ...policyOf(row), refreshSeconds: row.refresh_seconds });
  return changeRefreshPolicy(s, row, change);
}

export interface PostsPage {
  posts: PostJson[];
  next: string | null;
}

export async function postsOf(
  s: Services,
  row: Pick<CommunityRow, 'id' | 'shard' | 'ref'>,
  limit: number,
  before?: PostCursor,
): Promise<PostsPage> {
  const page = await communityPosts(s.router, row.shard, row.id, limit, before);
  return { posts: page.posts.map((p) => presentPost(p, row.ref)), next: page.next };
}

export async function newest(
  s: Services,
  limit: number,
  before?: PostCursor,
): Promise<PostsPage & { partial: boolean; missingNodes: string[] }> {
  const page = await newestPosts(s.router, limit, before);
  const ids = [...new Set(page.posts.map((p) => p.community_id))];
  const refs = await communityRefsByIds(s.catalog, ids);
  return {
    posts: page.posts.map((p) => presentPost(p, refs.get(p.community_id) ?? null)),
    next: page.next,
    partial: page.partial,
    missingNodes: page.missingNodes,
  };
}

export interface HealthReport {
  status: 'ok' | 'degraded';
  checks: { catalog: Check; shards: Record<string, Check>; temporal: Check };
}
interface Check {
  ok: boolean;
  error?: string;
}

const HEALTH_TIMEOUT_MS = 2000;

async function check(fn: () => Promise<unknown>): Promise<Check> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${HEALTH_TIMEOUT_MS} ms`)), HEALTH_TIMEOUT_MS);
      }),
    ]);
    return { ok: true };
  } catch (err) {
    return { ok: false, error: ((err as Error)?.message ?? String(err)).slice(0, 200) };
  } finally {
    clearTimeout(timer);
  }
}

export async function health(s: Services): Promise<HealthReport> {
  const catalogCheck = check(() => ping(s.catalog));
  const nodes = s.router.nodeNames();
  const shardChecks = Promise.all(nodes.map((n) => check(() => ping(s.router.pool(n)))));
  const temporalCheck = check(() =>
    s.temporal.withDeadline(Date.now() + HEALTH_TIMEOUT_MS, () => s.temporal.workflowService.getSystemInfo({})),
  );
  const [catalog, shardResults, temporal] = await Promise.all([catalogCheck, shardChecks, temporalCheck]);
  const shards = Object.fromEntries(nodes.map((n, i) => [n, shardResults[i]]));
  const ok = catalog.ok && temporal.ok && shardResults.every((r) => r.ok);
  return { status: ok ? 'ok' : 'degraded', checks: { catalog, shards, temporal } };
}
