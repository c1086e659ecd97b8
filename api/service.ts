// What the REST routes and the website share: adding (with the instance check), looking up,
// presenting with live status, paging posts. Both go through these so they behave the same.
import { PrivateAddressError, assertPublicHost } from '../src/net/addresses.js';
import { ping } from '../src/db/pool.js';
import { communitiesPage, communityById, communityByRef, communityRefsByIds, type CommunityRow } from '../src/db/communities.js';
import { communityPosts, newestPosts, type PostCursor } from '../src/db/posts.js';
import { LemmyError, type LemmyClient } from '../src/lemmy/client.js';
import { liveStatus, startTracking } from '../src/tracking.js';
import { ApiError, notFound } from './errors.js';
import { catalogStatus, presentCommunity, presentPost, type CommunityJson, type PostJson } from './presenters.js';
import type { ApiDeps } from './deps.js';
import { encodeCommunityCursor, parseRefParam, type AddInput } from './validation.js';

export interface Services extends ApiDeps {
  lemmy: LemmyClient;
}

export async function findCommunity(s: Services, rawRef: string): Promise<CommunityRow> {
  const lookup = parseRefParam(rawRef);
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

/** Checks that the instance is a reachable Lemmy with this community, then starts tracking. */
export async function addCommunity(s: Services, input: AddInput): Promise<{ community: CommunityJson; created: boolean }> {
  const existing = await communityByRef(s.catalog, input.ref);
  if (!existing) await checkInstance(s, input);
  const { row, created } = await startTracking(s, input);
  return { community: await withStatus(s, row), created };
}

export async function checkInstance(s: Services, input: AddInput): Promise<void> {
  if (!s.config.ALLOW_PRIVATE_INSTANCES) {
    try {
      await assertPublicHost(new URL(input.instance).hostname);
    } catch (err) {
      if (err instanceof PrivateAddressError) {
        throw new ApiError(
          400,
          'private_instance',
          `${input.host} resolves to a loopback, private or link-local address, which is not allowed (ALLOW_PRIVATE_INSTANCES=false)`,
        );
      }
      throw new ApiError(422, 'instance_unreachable', `Cannot resolve ${input.host}: ${(err as Error).message}`);
    }
  }
  try {
    await s.lemmy.getSite(input.instance);
    await s.lemmy.getCommunity(input.instance, input.name);
  } catch (err) {
    if (err instanceof LemmyError) throw lemmyToApi(err, input);
    throw err;
  }
}

function lemmyToApi(err: LemmyError, input: AddInput): ApiError {
  const detail = err.message.slice(0, 300);
  switch (err.type) {
    case 'CommunityNotFound':
      return new ApiError(422, 'community_not_found', `${input.host} has no community named "${input.name}"`);
    case 'NotLemmyApi':
    case 'InvalidResponse':
    case 'ResponseTooLarge':
      return new ApiError(422, 'not_lemmy', `${input.instance} does not answer like a Lemmy instance (${detail})`);
    case 'InstanceRequiresLogin':
      return new ApiError(422, 'instance_requires_login', `${input.instance} requires a login to read communities`);
    case 'PrivateAddress':
      return new ApiError(
        400,
        'private_instance',
        `${input.host} resolves to a loopback, private or link-local address, which is not allowed (ALLOW_PRIVATE_INSTANCES=false)`,
      );
    case 'RateLimited':
      return new ApiError(422, 'instance_rate_limited', `${input.instance} is rate limiting us; try again in a minute`);
    case 'NetworkError':
    case 'Timeout':
      return new ApiError(422, 'instance_unreachable', `Cannot reach ${input.instance} (${detail})`);
    default:
      return new ApiError(422, 'instance_error', `${input.instance} answered with an error (${detail})`);
  }
}

export interface PostsPage {
  posts: PostJson[];
  next: string | null;
}

export async function postsOf(s: Services, row: CommunityRow, limit: number, before?: PostCursor): Promise<PostsPage> {
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
