// Contract of the Mastodon source adapter against a fake Mastodon 4.x server: what a user who
// tracks a hashtag or an account would notice (which URLs are taken, what is refused and why,
// that no post is missed or doubled however many appear between syncs, and rate limits honoured).
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SourceError } from '../src/sources/errors.js';
import { SourceHttp } from '../src/sources/http.js';
import { createMastodonAdapter } from '../src/sources/mastodon/adapter.js';
import {
  itemIdOf,
  type DetectedSource,
  type FetchResult,
  type SourceState,
  type SourceTarget,
  type SyncContext,
} from '../src/sources/types.js';
import { FakeMastodon } from './fakes/fake-mastodon.js';

const http = new SourceHttp({ userAgent: 'test', connectTimeoutMs: 1000, timeoutMs: 2000, maxBytes: 1_000_000, allowPrivate: true });
const adapter = createMastodonAdapter(http);

const fakes: FakeMastodon[] = [];
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});
afterAll(async () => {
  await http.close();
});

async function startFake(opts: { rateLimit?: number } = {}): Promise<FakeMastodon> {
  const fake = new FakeMastodon(opts);
  fakes.push(fake);
  await fake.start();
  return fake;
}

function must(found: DetectedSource | undefined): DetectedSource {
  if (!found) throw new Error('expected the URL to be recognised');
  return found;
}

function target(url: string, state: SourceState = {}): SourceTarget {
  return { ...must(adapter.fromUrl(new URL(url))), state, trackedSince: new Date() };
}

function contextOf(opts: Partial<Pick<SyncContext, 'maxPages' | 'backfillPages' | 'signal'>> = {}) {
  const beats: string[] = [];
  const ctx: SyncContext = {
    signal: opts.signal ?? new AbortController().signal,
    heartbeat: (detail) => beats.push(detail ?? ''),
    newestStored: async () => undefined,
    storedIds: async () => new Set(),
    maxPages: opts.maxPages ?? 10,
    backfillPages: opts.backfillPages ?? 0,
  };
  return { ctx, beats };
}

/** One sync as the workflow runs it: fetch, then keep the state the adapter answered. */
async function sync(source: SourceTarget, opts: Parameters<typeof contextOf>[0] = {}): Promise<FetchResult> {
  const { ctx, beats } = contextOf(opts);
  const result = await adapter.fetchNewest(source, ctx);
  expect(beats).toHaveLength(result.requests);
  source.state = result.state;
  return result;
}

async function errorOf(promise: Promise<unknown>): Promise<SourceError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(SourceError);
    return err as SourceError;
  }
  throw new Error('expected a SourceError');
}

/** `count` plain statuses tagged `tag` by `account`; their ids, oldest first. */
function addTagged(fake: FakeMastodon, tag: string, count: number, account = 'alice'): string[] {
  return Array.from({ length: count }, (_, i) => fake.addStatus({ tag, account, content: `<p>post ${i} about #${tag}</p>` }).id);
}

describe('recognising Mastodon URLs and refs', () => {
  it('takes tag and account URLs, normalised, and reads @user@home accounts from their home', () => {
    expect(adapter.fromUrl(new URL('https://Mastodon.Social/tags/TypeScript'))).toEqual({
      kind: 'mastodon',
      ref: 'mastodon:tag:typescript@mastodon.social',
      instance: 'https://mastodon.social',
      host: 'mastodon.social',
      name: 'tag:typescript',
      url: 'https://mastodon.social/tags/typescript',
    });
    expect(adapter.fromUrl(new URL('https://mastodon.social.:443/@Gargron/'))).toEqual({
      kind: 'mastodon',
      ref: 'mastodon:user:gargron@mastodon.social',
      instance: 'https://mastodon.social',
      host: 'mastodon.social',
      name: 'user:gargron',
      url: 'https://mastodon.social/@gargron',
    });
    expect(adapter.fromUrl(new URL('https://mastodon.social/@alice@Fosstodon.org'))).toMatchObject({
      ref: 'mastodon:user:alice@fosstodon.org',
      instance: 'https://fosstodon.org',
      url: 'https://fosstodon.org/@alice',
    });
    expect(adapter.fromUrl(new URL('https://example.social:8443/tags/%E6%97%A5%E6%9C%AC'))).toMatchObject({
      ref: 'mastodon:tag:日本@example.social:8443',
      name: 'tag:日本',
      url: 'https://example.social:8443/tags/%E6%97%A5%E6%9C%AC',
    });
  });

  it('refuses other paths, schemes, queries and malformed names', () => {
    const refused = [
      'https://mastodon.social/tags/typescript?page=2',
      'https://mastodon.social/tags/typescript#top',
      'https://mastodon.social/tags/',
      'https://mastodon.social/tags/type-script',
      `https://mastodon.social/tags/${'a'.repeat(101)}`,
      'https://mastodon.social/@alice/113456789012345678',
      'https://mastodon.social/@alice@',
      'https://mastodon.social/@al.ice',
      `https://mastodon.social/@${'a'.repeat(31)}`,
      'https://mastodon.social/users/alice',
      'https://mastodon.social/c/technology',
      'https://mastodon.social/',
      'https://user:pw@mastodon.social/@alice',
      'ftp://mastodon.social/tags/typescript',
      'javascript:alert(1)//tags/x',
    ];
    for (const url of refused) expect(adapter.fromUrl(new URL(url)), url).toBeUndefined();
  });

  it('parses its refs back into the same source, and nothing else', () => {
    for (const url of ['https://mastodon.social/tags/rust', 'https://hachyderm.io/@kris', 'https://a.example:8443/tags/日本']) {
      const found = must(adapter.fromUrl(new URL(url)));
      expect(adapter.parseRef(found.ref)).toEqual(found);
    }
    expect(adapter.parseRef('mastodon:tag:Rust@Mastodon.Social.')?.ref).toBe('mastodon:tag:rust@mastodon.social');
    for (const ref of [
      'technology@lemmy.world',
      'mastodon:tags:rust@h.example',
      'mastodon:tag:a-b@h.example',
      'mastodon:user:x@',
      'mastodon:user:x@a/b',
    ]) {
      expect(adapter.parseRef(ref), ref).toBeUndefined();
    }
  });
});

describe('check at add time', () => {
  it('answers a tag’s and an account’s metadata, and the account id to keep', async () => {
    const fake = await startFake();
    fake.addAccount('alice', { displayName: 'Alice A.', note: '<p>Hi</p>', followers: 42 });
    addTagged(fake, 'typescript', 3);

    const tag = await adapter.check(target(`${fake.url}/tags/TypeScript`), {});
    expect(tag.state).toEqual({ sinceId: null });
    expect(tag.metadata).toMatchObject({ title: '#typescript', description: null, subscribers: null, postsCount: 3 });
    expect(tag.metadata?.actorId).toBe(`${fake.url}/tags/typescript`);

    const account = await adapter.check(target(`${fake.url}/@Alice`), {});
    expect(account.state).toEqual({ accountId: expect.stringMatching(/^\d{18}$/), sinceId: null });
    expect(account.metadata).toMatchObject({ title: 'Alice A.', description: '<p>Hi</p>', subscribers: 42, postsCount: 3 });
    expect(account.metadata?.icon).toMatch(/\/avatars\//);
  });

  it('finds an account of another instance on its home', async () => {
    const fake = await startFake();
    fake.addAccount('bob');
    const found = target(`http://elsewhere.example/@bob@${fake.host}`);
    expect(found.instance).toBe(fake.url);
    expect((await adapter.check(found, {})).state?.accountId).toMatch(/^\d+$/);
  });

  it('refuses a server that is not Mastodon', async () => {
    const fake = await startFake();
    addAccountAndTag(fake);
    fake.failNext('/api/v1/instance', { status: 404, body: '<html><body>Not Found</body></html>' });
    const err = await errorOf(adapter.check(target(`${fake.url}/tags/typescript`), {}));
    expect(err.type).toBe('UnsupportedSource');
    expect(err.disposition).toBe('permanent');
    expect(err.message).toMatch(/does not look like a Mastodon server/);

    fake.failNext('/api/v1/instance', { status: 200, body: { name: 'some other API' } });
    expect((await errorOf(adapter.check(target(`${fake.url}/tags/typescript`), {}))).type).toBe('UnsupportedSource');
  });

  it('says an unknown tag or account is gone, for good', async () => {
    const fake = await startFake();
    addAccountAndTag(fake);
    const tag = await errorOf(adapter.check(target(`${fake.url}/tags/nosuchtag`), {}));
    expect([tag.type, tag.disposition]).toEqual(['SourceGone', 'permanent']);
    expect(tag.message).toMatch(/#nosuchtag/);
    const account = await errorOf(adapter.check(target(`${fake.url}/@nobody`), {}));
    expect([account.type, account.disposition]).toEqual(['SourceGone', 'permanent']);
    expect(account.message).toMatch(/@nobody/);
  });

  it('tells an instance that wants a login apart', async () => {
    const fake = await startFake();
    addAccountAndTag(fake);
    fake.failNext('/api/v1/accounts/lookup', { status: 401, body: { error: 'This API requires an authenticated user' } });
    expect((await errorOf(adapter.check(target(`${fake.url}/@alice`), {}))).type).toBe('InstanceRequiresLogin');

    fake.failNext('/api/v1/timelines/tag', { status: 422, body: { error: 'This method requires an authenticated user' } });
    const err = await errorOf(sync(target(`${fake.url}/tags/typescript`)));
    expect([err.type, err.disposition]).toEqual(['InstanceRequiresLogin', 'permanent']);
  });
});

function addAccountAndTag(fake: FakeMastodon): void {
  fake.addAccount('alice');
  addTagged(fake, 'typescript', 1);
}

describe('fetching a timeline', () => {
  it('first sync: the newest 20 statuses, mapped, with exact snowflake ids', async () => {
    const fake = await startFake();
    fake.addAccount('alice');
    const ids = addTagged(fake, 'typescript', 25);
    const long = fake.addStatus({ tag: 'typescript', account: 'alice', content: `<p>${'word '.repeat(60)}</p>` }).id;
    const image = fake.addStatus({
      tag: 'typescript',
      account: 'alice',
      content: '',
      images: [`${fake.url}/media/small/1.png`],
      sensitive: true,
    });
    const entities = fake.addStatus({
      tag: 'typescript',
      account: 'alice',
      content:
        '<p>Fish &amp; chips &lt;3 at&nbsp;&quot;Joe&#39;s&quot;</p><p>Next <a href="https://x.example/a"><span class="invisible">https://</span><span>x.example/a</span></a></p>',
      favourites: 7,
      replies: 2,
      editedAt: '2024-06-02T00:00:00Z',
    });
    const spoiler = fake.addStatus({ tag: 'typescript', account: 'alice', content: '<p>the plot twist</p>', spoiler: 'Film spoilers' });
    const newestId = spoiler.id;

    const source = target(`${fake.url}/tags/typescript`, { sinceId: null });
    const first = await sync(source);
    expect(first.requests).toBe(1);
    expect(fake.requests.at(-1)).toMatchObject({ path: '/api/v1/timelines/tag/typescript', query: { limit: '20' }, status: 200 });
    expect(first.posts).toHaveLength(20);

    // The cursor is the newest id, digit for digit: as a Number it would be rounded onto its neighbours.
    expect(first.state.sinceId).toBe(newestId);
    expect(BigInt(newestId) > 2n ** 53n).toBe(true);
    expect(Number(newestId)).toBe(Number(entities.id));

    const byApId = new Map(first.posts.map((p) => [p.apId, p]));
    const post = (id: string) => byApId.get(`${fake.url}/users/alice/statuses/${id}`);
    expect(post(spoiler.id)?.title).toBe('Film spoilers');
    expect(post(spoiler.id)?.body).toBe('<p>the plot twist</p>');
    expect(post(entities.id)).toMatchObject({
      title: 'Fish & chips <3 at "Joe\'s" Next x.example/a',
      url: `${fake.url}/@alice/${entities.id}`,
      author: 'alice',
      score: 7,
      upvotes: 7,
      downvotes: 0,
      comments: 2,
      updated: '2024-06-02T00:00:00.000Z',
      nsfw: false,
      featured: false,
      thumbnail: null,
    });
    expect(post(long)?.title).toBe('word '.repeat(24).trim());
    expect(post(image.id)).toMatchObject({ title: '(no text)', thumbnail: `${fake.url}/media/small/1.png`, nsfw: true, body: null });
    expect(post(ids[24])?.published).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(post(ids[4])).toBeUndefined(); // older than the newest 20

    // Item ids are stable: the same status is the same post on every fetch.
    for (const p of first.posts) expect(p.lemmyId).toBe(itemIdOf(`mastodon:${p.apId}`));
    const again = await adapter.fetchNewest(target(`${fake.url}/tags/typescript`), contextOf().ctx);
    expect(again.posts.map((p) => p.lemmyId).sort()).toEqual(first.posts.map((p) => p.lemmyId).sort());
  });

  it('first sync backfills older pages with max_id when allowed', async () => {
    const fake = await startFake();
    fake.addAccount('alice');
    const ids = addTagged(fake, 'typescript', 50);
    const result = await sync(target(`${fake.url}/tags/typescript`), { backfillPages: 1 });
    expect(result.requests).toBe(2);
    expect(result.posts).toHaveLength(50);
    expect(fake.requests.at(-1)?.query).toEqual({ limit: '40', max_id: ids[30] });
    expect(result.state.sinceId).toBe(ids[49]);
  });

  it('95 new statuses after the cursor: pages forward with min_id until it has every one, once', async () => {
    const fake = await startFake();
    fake.addAccount('alice');
    addTagged(fake, 'typescript', 30);
    const source = target(`${fake.url}/tags/typescript`);
    const first = await sync(source);
    const cursor = first.state.sinceId;

    const fresh = addTagged(fake, 'typescript', 95);
    const before = fake.requests.length;
    const next = await sync(source);
    const asked = fake.requests.slice(before);
    expect(asked.map((r) => r.query)).toEqual([
      { limit: '40', min_id: cursor },
      { limit: '40', min_id: fresh[39] },
      { limit: '40', min_id: fresh[79] },
    ]);
    expect(next.requests).toBe(3);
    expect(next.posts).toHaveLength(95);
    expect(new Set(next.posts.map((p) => p.lemmyId)).size).toBe(95);
    expect(next.posts.map((p) => p.apId).sort()).toEqual(fresh.map((id) => `${fake.url}/users/alice/statuses/${id}`).sort());
    expect(next.state.sinceId).toBe(fresh[94]);
  });

  it('a sync stopped by maxPages leaves no gap: the next one goes on from its cursor', async () => {
    const fake = await startFake();
    fake.addAccount('alice');
    addTagged(fake, 'typescript', 5);
    const source = target(`${fake.url}/tags/typescript`);
    await sync(source);

    const fresh = addTagged(fake, 'typescript', 95);
    const partial = await sync(source, { maxPages: 2 });
    expect(partial.posts).toHaveLength(80);
    expect(partial.state.sinceId).toBe(fresh[79]);
    const rest = await sync(source, { maxPages: 2 });
    expect(rest.posts).toHaveLength(15);
    const all = [...partial.posts, ...rest.posts].map((p) => p.apId);
    expect(new Set(all).size).toBe(95);
    expect(rest.state.sinceId).toBe(fresh[94]);
  });

  it('nothing new: no posts, the cursor kept, one request', async () => {
    const fake = await startFake();
    fake.addAccount('alice');
    const ids = addTagged(fake, 'typescript', 10);
    const source = target(`${fake.url}/tags/typescript`);
    await sync(source);
    const before = fake.requests.length;
    const idle = await sync(source);
    expect(idle.posts).toEqual([]);
    expect(idle.state.sinceId).toBe(ids[9]);
    expect(idle.requests).toBe(1);
    expect(fake.requests.length - before).toBe(1);
  });

  it('account timeline: reblogs left out, the account id looked up once and kept', async () => {
    const fake = await startFake();
    const alice = fake.addAccount('alice');
    fake.addAccount('bob');
    const own = fake.addStatus({ account: 'alice', content: '<p>my own words</p>' });
    const bobs = fake.addStatus({ account: 'bob', content: '<p>bob speaks</p>' });
    fake.addStatus({ account: 'alice', content: '', reblogOf: bobs.id });
    const reply = fake.addStatus({ account: 'alice', content: '<p>@bob indeed</p>', tag: 'misc' });

    const source = target(`${fake.url}/@alice`);
    const first = await sync(source);
    expect(first.requests).toBe(2);
    expect(fake.requests.slice(-2).map((r) => r.path)).toEqual(['/api/v1/accounts/lookup', `/api/v1/accounts/${alice.id}/statuses`]);
    expect(fake.requests.at(-1)?.query).toEqual({ exclude_reblogs: 'true', limit: '20' });
    expect(first.posts.map((p) => p.title).sort()).toEqual(['@bob indeed', 'my own words']);
    expect(first.posts.every((p) => p.author === 'alice')).toBe(true);
    expect(first.state).toEqual({ accountId: alice.id, sinceId: reply.id });
    expect(BigInt(own.id) < BigInt(reply.id)).toBe(true);

    const later = fake.addStatus({ account: 'alice', content: '<p>later</p>' });
    const next = await sync(source);
    expect(next.requests).toBe(1);
    expect(fake.requests.at(-1)?.query).toEqual({ exclude_reblogs: 'true', limit: '40', min_id: reply.id });
    expect(next.posts.map((p) => p.title)).toEqual(['later']);
    expect(next.state.sinceId).toBe(later.id);
  });

  it('a stale account id is looked up again', async () => {
    const fake = await startFake();
    const alice = fake.addAccount('alice');
    fake.addStatus({ account: 'alice', content: 'hello' });
    const result = await sync(target(`${fake.url}/@alice`, { accountId: '1', sinceId: null }));
    expect(result.posts).toHaveLength(1);
    expect(result.state.accountId).toBe(alice.id);
    expect(result.requests).toBe(3);
  });

  it('metadata: a tag’s weekly uses and an account’s profile', async () => {
    const fake = await startFake();
    fake.addAccount('alice', { displayName: '', note: 'about me', followers: 5 });
    addTagged(fake, 'rust', 4);
    const { ctx, beats } = contextOf();
    expect(await adapter.fetchMetadata(target(`${fake.url}/tags/rust`), ctx)).toMatchObject({
      title: '#rust',
      postsCount: 4,
      subscribers: null,
    });
    expect(await adapter.fetchMetadata(target(`${fake.url}/@alice`), ctx)).toMatchObject({
      title: 'alice',
      description: 'about me',
      subscribers: 5,
      postsCount: 4,
      actorId: `${fake.url}/@alice`,
    });
    expect(beats).toHaveLength(2);
  });
});

describe('failures', () => {
  it('rate limited: a 429 with only X-RateLimit-Reset waits until the reset', async () => {
    const fake = await startFake({ rateLimit: 3 });
    addAccountAndTag(fake);
    const source = target(`${fake.url}/tags/typescript`);
    const checked = await adapter.check(source, {});
    source.state = checked.state ?? {};
    await sync(source);

    const err = await errorOf(sync(source));
    expect(fake.requests.at(-1)?.status).toBe(429);
    expect(err.type).toBe('RateLimited');
    expect(err.disposition).toBe('rate_limited');
    const untilReset = fake.rateLimitResetAt.getTime() - Date.now();
    expect(untilReset).toBeGreaterThan(60_000);
    expect(Math.abs((err.opts.retryAfterMs ?? 0) - untilReset)).toBeLessThan(5000);
  });

  it('server errors are passing, bad answers are invalid responses', async () => {
    const fake = await startFake();
    addAccountAndTag(fake);
    const source = target(`${fake.url}/tags/typescript`);

    fake.failNext('/api/v1/timelines', { status: 503, body: '<html>Maintenance</html>' });
    const down = await errorOf(sync(source));
    expect([down.type, down.disposition]).toEqual(['ServerError', 'retryable']);

    fake.failNext('/api/v1/timelines', { status: 200, body: '<html>Checking your browser</html>' });
    expect((await errorOf(sync(source))).type).toBe('InvalidResponse');

    fake.failNext('/api/v1/timelines', { status: 200, body: '[{"id":', contentType: 'application/json' });
    expect((await errorOf(sync(source))).type).toBe('InvalidResponse');

    fake.failNext('/api/v1/timelines', { status: 200, body: [{ id: 12345, content: 'no' }] });
    const shape = await errorOf(sync(source));
    expect(shape.type).toBe('InvalidResponse');
    expect(shape.message).toMatch(/\[0\]\.id/);

    fake.failNext('/api/v1/timelines', { status: 200, body: { error: 'not a list' } });
    expect((await errorOf(sync(source))).type).toBe('InvalidResponse');
  });

  it('a cancelled sync stops asking', async () => {
    const fake = await startFake();
    addAccountAndTag(fake);
    const controller = new AbortController();
    controller.abort(new Error('activity cancelled'));
    const err = await errorOf(sync(target(`${fake.url}/tags/typescript`), { signal: controller.signal }));
    expect(err.type).toBe('Timeout');
  });
});
