// Mastodon as a source: a hashtag's or an account's public timeline, read from the instance the
// timeline lives on. The cursor is the newest status id stored (a snowflake beyond 2^53, kept as
// a string and compared as BigInt); later syncs page forward from it with `min_id`, so nothing
// published in between is missed however long the worker was away.
import type { PostInput } from '../../db/posts.js';
import { SourceError } from '../errors.js';
import type { SourceHttp } from '../http.js';
import {
  itemIdOf,
  type CheckResult,
  type FetchResult,
  type SourceAdapter,
  type SourceMetadata,
  type SourceTarget,
  type SyncContext,
} from '../types.js';
import { MastodonApi, type PageQuery, type StatusPage } from './client.js';
import { fromRef, fromWebUrl, timelineOf, type MastodonTimeline } from './refs.js';
import { snowflake, type MastodonAccount, type MastodonStatus, type MastodonTag } from './schema.js';

/** The newest page a first sync stores; older backfill and forward pages use the API maximum. */
export const FIRST_PAGE_SIZE = 20;
export const PAGE_SIZE = 40;
export const MAX_BODY_CHARS = 200_000;
const TITLE_CHARS = 120;
const MAX_SPOILER_CHARS = 1000;

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

function decodeEntity(entity: string, body: string): string {
  if (body[0] !== '#') return ENTITIES[body.toLowerCase()] ?? entity;
  const code = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
  const valid = Number.isInteger(code) && code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff);
  return valid ? String.fromCodePoint(code) : entity;
}

/** A status's HTML as one line of plain text. */
export function plainTextOf(html: string): string {
  return (
    html
      // Mastodon hides the scheme and tail of long links in invisible spans: not part of what one reads.
      .replace(/<span class="invisible">[^<]*<\/span>/gi, '')
      .replace(/<br\s*\/?>|<\/(p|li|h\d|blockquote|pre)>/gi, ' ')
      .replace(/<[^>]*>/g, '')
      // Decoded after the tags are gone, so that an escaped "&lt;b&gt;" stays text.
      .replace(/&(#x[0-9a-f]{1,6}|#\d{1,7}|[a-z]{2,8});/gi, decodeEntity)
      .replace(/\s+/g, ' ')
      .trim()
  );
}

/** The first `n` characters (code points, so that no emoji is cut in half). */
function firstChars(text: string, n: number): string {
  const chars = Array.from(text);
  return chars.length <= n ? text : chars.slice(0, n).join('').trimEnd();
}

export function titleOf(status: Pick<MastodonStatus, 'spoiler_text' | 'content'>): string {
  const spoiler = status.spoiler_text.trim();
  if (spoiler) return firstChars(spoiler, MAX_SPOILER_CHARS);
  const text = plainTextOf(status.content);
  return text ? firstChars(text, TITLE_CHARS) : '(no text)';
}

export function toPostInput(status: MastodonStatus, instance: string): PostInput {
  const image = status.media_attachments.find((m) => m.type === 'image' && m.preview_url);
  return {
    lemmyId: itemIdOf(`mastodon:${status.uri ?? status.id}`),
    apId: status.uri ?? status.url ?? `${instance}/api/v1/statuses/${status.id}`,
    title: titleOf(status),
    url: status.url,
    body: status.content ? status.content.slice(0, MAX_BODY_CHARS) : null,
    author: status.account.acct || null,
    thumbnail: image?.preview_url ?? null,
    published: status.created_at,
    updated: status.edited_at,
    score: status.favourites_count,
    upvotes: status.favourites_count,
    downvotes: 0,
    comments: status.replies_count,
    nsfw: status.sensitive,
    featured: false,
  };
}

function tagMetadata(tag: MastodonTag, asked: string): SourceMetadata {
  // The server's spelling ("TypeScript") reads better, as long as it is the same tag.
  const name = tag.name.toLowerCase() === asked ? tag.name : asked;
  return {
    remoteId: null,
    actorId: tag.url,
    title: `#${name}`,
    description: null,
    icon: null,
    banner: null,
    nsfw: false,
    subscribers: null,
    postsCount: tag.history?.length ? tag.history.reduce((sum, day) => sum + day.uses, 0) : null,
  };
}

function accountMetadata(account: MastodonAccount): SourceMetadata {
  return {
    remoteId: null, // account ids are snowflakes, not safe integers
    actorId: account.url,
    title: account.display_name || account.username,
    description: account.note,
    icon: account.avatar,
    banner: account.header,
    nsfw: false,
    subscribers: account.followers_count,
    postsCount: account.statuses_count,
  };
}

function timelineOrFail(source: SourceTarget): MastodonTimeline {
  const timeline = timelineOf(source.name);
  if (!timeline) throw new SourceError('UnsupportedSource', `"${source.name}" is not a Mastodon timeline (tag:<tag> or user:<name>)`);
  return timeline;
}

/** A snowflake from the state, or undefined when absent or malformed. */
function idFrom(value: unknown): string | undefined {
  return typeof value === 'string' && snowflake.safeParse(value).success ? value : undefined;
}

const newer = (a: string, b: string) => BigInt(a) > BigInt(b);

/** The min_id of the next newer page: the rel="prev" link when it neither skips past this page nor stands still. */
function newerCursor(page: StatusPage, cursor: string): string | undefined {
  const ids = page.statuses.map((s) => s.id);
  const newest = ids.reduce((a, b) => (newer(b, a) ? b : a), ids[0]);
  if (!newest) return undefined;
  const linked = page.prevMinId;
  return linked && newer(linked, cursor) && !newer(linked, newest) ? linked : newest;
}

/** The max_id of the next older page: the rel="next" link when it neither skips past this page nor stands still. */
function olderCursor(page: StatusPage, cursor: string | undefined): string | undefined {
  const ids = page.statuses.map((s) => s.id);
  const oldest = ids.reduce((a, b) => (newer(a, b) ? b : a), ids[0]);
  if (!oldest) return undefined;
  const linked = page.nextMaxId;
  return linked && (!cursor || newer(cursor, linked)) && !newer(oldest, linked) ? linked : oldest;
}

export function createMastodonAdapter(http: SourceHttp): SourceAdapter {
  return {
    kind: 'mastodon',

    fromUrl(url) {
      return fromWebUrl(url);
    },

    parseRef(ref) {
      return fromRef(ref);
    },

    async check(source, opts): Promise<CheckResult> {
      const timeline = timelineOrFail(source);
      const api = new MastodonApi(http, source.instance, { signal: opts.signal });
      await api.instanceInfo();
      if (timeline.kind === 'tag') return { metadata: tagMetadata(await api.tag(timeline.tag), timeline.tag), state: { sinceId: null } };
      const account = await api.lookupAccount(timeline.user);
      return { metadata: accountMetadata(account), state: { accountId: account.id, sinceId: null } };
    },

    async fetchMetadata(source, ctx) {
      const timeline = timelineOrFail(source);
      const api = new MastodonApi(http, source.instance, { signal: ctx.signal, heartbeat: (d) => ctx.heartbeat(d) });
      if (timeline.kind === 'tag') return tagMetadata(await api.tag(timeline.tag), timeline.tag);
      return accountMetadata(await api.lookupAccount(timeline.user));
    },

    async fetchNewest(source: SourceTarget, ctx: SyncContext): Promise<FetchResult> {
      const timeline = timelineOrFail(source);
      const api = new MastodonApi(http, source.instance, { signal: ctx.signal, heartbeat: (d) => ctx.heartbeat(d) });
      const state = { ...source.state };

      let accountId = idFrom(state.accountId);
      const readPage = async (query: PageQuery): Promise<StatusPage> => {
        if (timeline.kind === 'tag') return api.tagTimeline(timeline.tag, query);
        const lookedUp = !accountId;
        accountId ??= state.accountId = (await api.lookupAccount(timeline.user)).id;
        try {
          return await api.accountStatuses(accountId, timeline.user, query);
        } catch (err) {
          // A remembered id may be stale (the account was deleted and made again): look it up once more.
          if (lookedUp || !(err instanceof SourceError) || err.type !== 'SourceGone') throw err;
          const fresh = (await api.lookupAccount(timeline.user)).id;
          if (fresh === accountId) throw err;
          accountId = state.accountId = fresh;
          return api.accountStatuses(accountId, timeline.user, query);
        }
      };

      const byId = new Map<string, MastodonStatus>();
      const sinceId = idFrom(state.sinceId);
      let newest = sinceId;
      const keep = (page: StatusPage) => {
        for (const s of page.statuses) {
          byId.set(s.id, s);
          if (!newest || newer(s.id, newest)) newest = s.id;
        }
      };

      if (!sinceId) {
        // First sync: the newest page, then up to backfillPages older ones.
        let page = await readPage({ limit: FIRST_PAGE_SIZE });
        keep(page);
        let limit = FIRST_PAGE_SIZE;
        let maxId: string | undefined;
        for (let i = 0; i < ctx.backfillPages && page.statuses.length >= limit; i++) {
          maxId = olderCursor(page, maxId);
          if (!maxId) break;
          limit = PAGE_SIZE;
          page = await readPage({ limit, maxId });
          keep(page);
        }
      } else {
        // Page forward from the cursor: each page is the one just newer than the last, so a full
        // page means more are waiting. What maxPages leaves is fetched by the next sync, from the new cursor.
        let cursor = sinceId;
        for (let i = 0; i < Math.max(1, ctx.maxPages); i++) {
          const page = await readPage({ limit: PAGE_SIZE, minId: cursor });
          keep(page);
          const next = page.statuses.length >= PAGE_SIZE ? newerCursor(page, cursor) : undefined;
          if (!next) break;
          cursor = next;
        }
      }

      const posts = [...byId.values()].filter((s) => !s.reblog).map((s) => toPostInput(s, source.instance));
      return { posts, state: { ...state, sinceId: newest ?? null }, requests: api.requests };
    },
  };
}
