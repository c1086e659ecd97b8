import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { GetCommunityResponse, GetPostsResponse, GetSiteResponse } from 'lemmy-js-client';
import { FakeLemmy } from './fake-lemmy.js';

describe('FakeLemmy', () => {
  let fake: FakeLemmy;
  const get = async (path: string) => {
    const res = await fetch(fake.url + path, { headers: { 'user-agent': 'fake-test/1.0' } });
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type') ?? '', text, headers: res.headers };
  };
  const getJson = async <T>(path: string) => {
    const r = await get(path);
    return { ...r, body: JSON.parse(r.text) as T };
  };

  beforeAll(async () => {
    fake = await FakeLemmy.start({ siteName: 'Test Site' });
    fake.addCommunity('Technology', { title: 'Tech!', description: 'all things tech', subscribers: 42 });
    fake.addPosts('technology', 25);
    const [pinned] = fake.addPosts('technology', 1, () => ({ featured: true, title: 'pinned' }));
    fake.editPost(pinned.id, { published: new Date(Date.now() - 86_400_000) }); // old but featured
    fake.addPosts('technology', 1, () => ({ title: 'gone' })).forEach((p) => fake.editPost(p.id, { deleted: true }));
  });
  afterAll(async () => {
    await fake.close();
  });

  it('serves site and community metadata in the v3 shape', async () => {
    expect(fake.url).toBe(`http://${fake.hostPort}`);
    const site = await getJson<GetSiteResponse>('/api/v3/site');
    expect(site.type).toMatch(/^application\/json/);
    expect(site.body.site_view.site.name).toBe('Test Site');
    expect(site.body.version).toBe('0.19.5');

    const { status, body } = await getJson<GetCommunityResponse>('/api/v3/community?name=TECHNOLOGY');
    expect(status).toBe(200);
    const c = body.community_view.community;
    expect(c).toMatchObject({ name: 'Technology', title: 'Tech!', description: 'all things tech', deleted: false });
    expect(c.actor_id).toBe(`${fake.url}/c/Technology`);
    expect(c.published).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect('icon' in c).toBe(false); // absent Option fields are omitted, not null
    expect(body.community_view.counts).toMatchObject({ subscribers: 42, posts: 26, community_id: c.id });
    const byId = await getJson<GetCommunityResponse>(`/api/v3/community?id=${c.id}`);
    expect(byId.body.community_view.community.name).toBe('Technology');
  });

  it('lists posts newest first, featured first, with limit and page', async () => {
    const p1 = await getJson<GetPostsResponse>('/api/v3/post/list?community_name=technology&sort=New&limit=10');
    expect(p1.status).toBe(200);
    const posts = p1.body.posts;
    expect(posts).toHaveLength(10);
    expect(posts[0].post.name).toBe('pinned');
    expect(posts[0].post.featured_community).toBe(true);
    const rest = posts.slice(1).map((v) => v.post.id);
    expect(rest).toEqual([...rest].sort((a, b) => b - a));
    expect(posts.some((v) => v.post.name === 'gone')).toBe(false);
    expect(typeof p1.body.next_page).toBe('string');
    expect(posts[1].post.ap_id).toBe(`${fake.url}/post/${posts[1].post.id}`);
    expect(posts[1].creator.actor_id).toMatch(/\/u\/fake_user$/);

    const p3 = await getJson<GetPostsResponse>('/api/v3/post/list?community_name=technology&sort=New&limit=10&page=3');
    expect(p3.body.posts).toHaveLength(6); // 26 visible posts
    expect(p3.body.posts.some((v) => v.post.featured_community)).toBe(false);
    expect(p3.body.posts.at(-1)!.post.id).toBe(1);

    const tooMany = await getJson<{ error: string }>('/api/v3/post/list?community_name=technology&limit=51');
    expect(tooMany.status).toBe(400);
    expect(tooMany.body).toEqual({ error: 'couldnt_get_posts' });
  });

  it('answers Lemmy error codes and an HTML 404 for unknown paths', async () => {
    const c = await getJson<{ error: string }>('/api/v3/community?name=nope');
    expect([c.status, c.body.error]).toEqual([404, 'couldnt_find_community']);
    const l = await getJson<{ error: string }>('/api/v3/post/list?community_name=nope');
    expect([l.status, l.body.error]).toEqual([404, 'unknown']);
    const n = await getJson<{ error: string }>('/api/v3/community');
    expect([n.status, n.body.error]).toEqual([400, 'no_id_given']);
    const u = await get('/api/v3/nothing');
    expect(u.status).toBe(404);
    expect(u.type).toMatch(/^text\/html/);
  });

  it('serves a queued fault once, then normal answers resume; counts requests', async () => {
    fake.resetRequests();
    fake.fail({ kind: 'status429', retryAfterSeconds: 7 }, { path: 'post/list', community: 'technology' });
    const site = await get('/api/v3/site'); // different path: not faulted
    expect(site.status).toBe(200);
    const f = await get('/api/v3/post/list?community_name=technology');
    expect(f.status).toBe(429);
    expect(f.headers.get('retry-after')).toBe('7');
    const ok = await get('/api/v3/post/list?community_name=technology');
    expect(ok.status).toBe(200);

    fake.fail({ kind: 'malformedJson' });
    const bad = await get('/api/v3/community?name=technology');
    expect(() => JSON.parse(bad.text)).toThrow();
    expect((await get('/api/v3/community?name=technology')).status).toBe(200);

    expect(fake.requestsFor('technology', 'post/list')).toBe(2);
    expect(fake.requestsFor('Technology')).toBe(4);
    expect(fake.requests).toHaveLength(5);
    expect(fake.requests[1]).toMatchObject({ method: 'GET', path: '/api/v3/post/list', userAgent: 'fake-test/1.0' });

    fake.removeCommunity('technology');
    expect((await get('/api/v3/community?name=technology')).status).toBe(404);
  });
});
