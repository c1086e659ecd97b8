// Lemmy as a source: a community, read from its home instance through API v4 (Lemmy 1.0) or v3
// (0.19), whichever the instance speaks (found at add time, or on the first sync of a community
// added before versions were told apart, and kept in the source's state).
import type { PostInput } from '../../db/posts.js';
import type { DetectedSource, FetchResult, SourceAdapter, SourceMetadata, SourceTarget } from '../types.js';
import { LemmyClient, type LemmyApiVersion } from './client.js';
import { parseCommunity, RefError } from './refs.js';
import type { LemmyCommunity, LemmyPost } from './schema.js';

/** The newest page a first sync stores; later syncs page back with the API maximum. */
export const FIRST_PAGE_SIZE = 20;
export const BACKFILL_PAGE_SIZE = 50;

export function toPostInput(p: LemmyPost): PostInput {
  return {
    lemmyId: p.post.id,
    apId: p.post.ap_id,
    title: p.post.name,
    url: p.post.url,
    body: p.post.body,
    author: p.creator?.name ?? null,
    thumbnail: p.post.thumbnail_url,
    published: p.post.published,
    updated: p.post.updated,
    score: p.counts.score,
    upvotes: p.counts.upvotes,
    downvotes: p.counts.downvotes,
    comments: p.counts.comments,
    nsfw: p.post.nsfw,
    featured: p.post.featured_community || p.post.featured_local,
  };
}

function toMetadata(community: LemmyCommunity): SourceMetadata {
  const c = community.community;
  return {
    remoteId: c.id,
    actorId: c.actor_id,
    title: c.title,
    description: c.description,
    icon: c.icon,
    banner: c.banner,
    nsfw: c.nsfw,
    subscribers: community.counts.subscribers,
    postsCount: community.counts.posts,
  };
}

const isPinned = (p: LemmyPost) => p.post.featured_community || p.post.featured_local;

function detected(input: string): DetectedSource | undefined {
  try {
    const c = parseCommunity(input, 'community');
    return { kind: 'lemmy', ref: c.ref, instance: c.instance, host: c.host, name: c.name, url: null };
  } catch (err) {
    if (err instanceof RefError) return undefined;
    throw err;
  }
}

export function createLemmyAdapter(lemmy: LemmyClient): SourceAdapter {
  const versionOf = (source: SourceTarget): LemmyApiVersion | undefined =>
    source.state.api === 'v4' || source.state.api === 'v3' ? source.state.api : undefined;

  return {
    kind: 'lemmy',

    fromUrl(url) {
      if (!/^\/c\/[^/]+\/?$/.test(url.pathname) || url.search || url.hash) return undefined;
      // A malformed %-escape in a community path is the user's mistake to hear about (a RefError,
      // a 400), not a feed to try; a path whose name is no Lemmy name may still be a feed.
      if (/%(?![0-9a-f]{2})/i.test(url.pathname)) parseCommunity(url.href, 'url');
      return detected(url.href);
    },

    parseRef(ref) {
      return /^[^:/]+@/.test(ref) ? detected(ref) : undefined;
    },

    async check(source, opts) {
      const { version } = await lemmy.detectVersion(source.instance, opts);
      const community = await lemmy.getCommunity(source.instance, source.name, opts, version);
      return { metadata: toMetadata(community), state: { api: version } };
    },

    async fetchMetadata(source, ctx) {
      const community = await lemmy.getCommunity(source.instance, source.name, { signal: ctx.signal }, versionOf(source) ?? 'v3');
      ctx.heartbeat('community fetched');
      return toMetadata(community);
    },

    async fetchNewest(source, ctx): Promise<FetchResult> {
      const signal = ctx.signal;
      let requests = 0;
      let version = versionOf(source);
      if (!version) {
        version = (await lemmy.detectVersion(source.instance, { signal })).version;
        requests += version === 'v4' ? 1 : 2;
      }
      // Pinned posts lead Lemmy's listing even with sort=New: dedupe by id, and never use them to
      // decide whether we have caught up with what is stored.
      const byId = new Map<number, LemmyPost>();
      const keep = (posts: LemmyPost[]) => {
        for (const p of posts) if (!byId.has(p.post.id)) byId.set(p.post.id, p);
      };
      const newest = await ctx.newestStored();
      // Caught up once a page reaches what we already have: a stored post, or one published
      // before the newest stored one. Before the first store, "what we have" is everything
      // published before tracking began, so posts that appear while a first sync is delayed
      // (worker down, instance failing) are not lost either.
      const since = Date.parse(newest ?? source.trackedSince.toISOString());
      const reachesStored = async (posts: LemmyPost[]): Promise<boolean> => {
        const regular = posts.filter((p) => !isPinned(p));
        if (regular.some((p) => Date.parse(p.post.published) <= since)) return true;
        if (!newest) return false;
        return (await ctx.storedIds(regular.map((p) => p.post.id))).size > 0;
      };

      // One page reader per API version: numbered pages on v3 (cursors are unreliable on 0.19),
      // opaque cursors on v4. `start` restarts from the newest page.
      let cursor: string | null = null;
      let pageNo = 0;
      const readPage = async (limit: number, start = false, store = true): Promise<LemmyPost[]> => {
        if (start) {
          cursor = null;
          pageNo = 0;
        }
        pageNo += 1;
        let posts: LemmyPost[];
        if (version === 'v4') {
          if (pageNo > 1 && !cursor) return [];
          const page = await lemmy.listPostsV4(source.instance, source.name, { limit, cursor: cursor ?? undefined }, { signal });
          cursor = page.nextPage;
          posts = page.posts;
        } else {
          posts = await lemmy.listPosts(source.instance, source.name, { limit, page: pageNo }, { signal });
        }
        requests += 1;
        ctx.heartbeat(`page ${pageNo} (${limit})`);
        if (store) keep(posts);
        return posts;
      };

      const first = await readPage(FIRST_PAGE_SIZE, true);
      if (first.length >= FIRST_PAGE_SIZE && !(await reachesStored(first))) {
        // More posts appeared than one page holds: page back until we meet what we have, within maxPages.
        for (let i = 0; i < ctx.maxPages; i++) {
          const posts = await readPage(BACKFILL_PAGE_SIZE, i === 0);
          if (posts.length < BACKFILL_PAGE_SIZE || (await reachesStored(posts))) break;
        }
      } else if (!newest && first.length >= FIRST_PAGE_SIZE) {
        const pinned = first.filter(isPinned).length;
        if (pinned > 0) {
          // Pinned posts took places on the first page: the next page completes the newest 20.
          keep((await readPage(FIRST_PAGE_SIZE, false, false)).slice(0, pinned));
        }
        for (let i = 0; i < ctx.backfillPages; i++) {
          const posts = await readPage(BACKFILL_PAGE_SIZE, i === 0);
          if (posts.length < BACKFILL_PAGE_SIZE) break;
        }
      }
      return { posts: [...byId.values()].map(toPostInput), state: { ...source.state, api: version }, requests };
    },
  };
}
