/** @jsxImportSource hono/jsx */
// The website: the same service layer as the REST API, rendered on the server (pages in
// ./pages/, inside ./layout.tsx through Hono's jsxRenderer: `c.render(<Page/>, { title })`).
// Forms POST and redirect (303); validation errors are shown inline next to the field. Cross-site
// posts are refused for the whole app in app.ts (guards.ts).
import { Hono, type Context } from 'hono';
import { deleteCookie, setCookie } from 'hono/cookie';
import { requireWebToken, TOKEN_COOKIE, tokenMatches } from '../auth.js';
import { ApiError } from '../errors.js';
import type { RequestInfo } from '../guards.js';
import { LoginLimiter } from '../login-limiter.js';
import { addCommunity, changeRefresh, findCommunity, listWithStatus, newest, postsOf, withStatus, type Services } from '../service.js';
import { requestRefresh, stopTracking } from '../../src/tracking.js';
import type { CommunityRow } from '../../src/db/communities.js';
import {
  addBodySchema,
  fieldMessage,
  parseCommunitiesQuery,
  parsePageQuery,
  parseWith,
  patchBodySchema,
  toAddInput,
} from '../validation.js';
import { communityPath, localPath, pageContext } from './components.js';
import { isFollowing } from '../users.js';
import { userWebRoutes, viewerOf } from './user-routes.js';
import { CommunityPage } from './pages/community.js';
import { ConfirmRemovePage } from './pages/confirm-remove.js';
import { HomePage, type AddFormState } from './pages/home.js';
import { LoginPage } from './pages/login.js';
import { PostsPage } from './pages/posts.js';

/** A same-site path to go back to after a form; anything else becomes "/". */
function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** The add form's fields: an error whose `field` is one of them is shown next to it. */
const FORM_FIELDS = new Set(['community', 'instance', 'name', 'refreshSeconds']);

const FLASH: Record<string, (ref: string) => string> = {
  added: (ref) => `Now tracking ${ref}. The first sync is under way.`,
  exists: (ref) => `${ref} was already tracked.`,
  refreshing: (ref) => `Refresh of ${ref} requested.`,
  'policy-saved': (ref) => `Refresh policy of ${ref} saved.`,
  removed: (ref) => `Stopped tracking ${ref} and deleted its posts.`,
  'logged-in': () => 'Logged in.',
  'logged-out': () => 'Logged out.',
};

function flashOf(c: Context): string | undefined {
  const kind = c.req.query('flash');
  const fn = kind ? FLASH[kind] : undefined;
  return fn ? fn((c.req.query('ref') ?? '').slice(0, 300)) : undefined;
}

export function webRoutes(s: Services, info: RequestInfo): Hono {
  const app = new Hono();
  const token = s.config.API_TOKEN;
  const logins = new LoginLimiter();

  // Every form POST that changes something needs the token when one is configured.
  const guard = requireWebToken(token);
  app.use('/communities', guard);
  app.use('/c/*', guard);

  const home = async (c: Context, form: AddFormState, status: 200 | 400 | 422 = 200) => {
    const page = parseCommunitiesQuery({ limit: c.req.query('limit'), before: c.req.query('before') });
    const { communities, next } = await listWithStatus(s, page);
    c.status(status);
    return c.render(
      <HomePage
        ctx={pageContext(s, c)}
        communities={communities}
        form={form}
        flash={flashOf(c)}
        next={next}
        limit={c.req.query('limit') ? page.limit : undefined}
      />,
      { title: 'Communities' },
    );
  };

  app.get('/', (c) => home(c, { values: {}, errors: {} }));
  app.route('/', userWebRoutes(s, { isTls: (c) => info.isTls(c) }));

  app.post('/communities', async (c) => {
    const raw = await c.req.parseBody();
    const values = {
      community: str(raw.community)?.slice(0, 700),
      instance: str(raw.instance)?.slice(0, 500),
      name: str(raw.name)?.slice(0, 200),
      refreshSeconds: str(raw.refreshSeconds)?.slice(0, 20),
    };
    const body: Record<string, unknown> = {};
    // A URL may be a Lemmy community, a feed or a Mastodon timeline: detected like the API's {"url"}.
    if (values.community?.trim()) body[/^\s*https?:\/\//i.test(values.community) ? 'url' : 'community'] = values.community;
    else {
      if (values.instance?.trim() || values.name?.trim()) {
        body.instance = values.instance ?? '';
        body.name = values.name ?? '';
      }
    }
    const form: AddFormState = { values, errors: {} };
    if (!('community' in body) && !('url' in body) && !('instance' in body)) {
      form.errors.community = 'Enter name@host, or an instance URL and a community name';
      return home(c, form, 400);
    }
    if (values.refreshSeconds?.trim()) {
      const n = Number(values.refreshSeconds);
      if (!/^\d+$/.test(values.refreshSeconds.trim()) || n < 1 || n > 86_400) {
        form.errors.refreshSeconds = 'A whole number of seconds from 1 to 86400';
        return home(c, form, 400);
      }
      body.refreshSeconds = n;
    }
    try {
      const { community, created } = await addCommunity(s, toAddInput(parseWith(addBodySchema, body), s.sources, s.config));
      return c.redirect(`/?flash=${created ? 'added' : 'exists'}&ref=${encodeURIComponent(community.ref)}`, 303);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status >= 500 || err.status === 401 || err.status === 403) throw err;
      // The form's field for the error's (a URL is typed into the community field).
      const field = err.field === 'url' ? 'community' : err.field;
      if (field && FORM_FIELDS.has(field)) form.errors[field] = fieldMessage(err);
      else form.general = err.message;
      return home(c, form, err.status === 422 ? 422 : 400);
    }
  });

  /** A community page: the newest posts (live) or an older page; a flash or an error status on top. */
  const communityPage = async (c: Context, row: CommunityRow, opts: { flash?: string; status?: 400 } = {}) => {
    const page = parsePageQuery({ limit: c.req.query('limit'), before: c.req.query('before') });
    const [community, posts, viewer] = await Promise.all([withStatus(s, row), postsOf(s, row, page.limit, page.before), viewerOf(s, c)]);
    if (opts.status) c.status(opts.status);
    return c.render(
      <CommunityPage
        ctx={pageContext(s, c)}
        community={community}
        posts={posts.posts}
        next={posts.next}
        flash={opts.flash ?? flashOf(c)}
        limit={page.limit}
        live={!page.before}
        viewer={viewer ? { name: viewer.name, following: await isFollowing(s, viewer, row) } : undefined}
      />,
      { title: community.title ?? community.ref },
    );
  };

  app.get('/c/:ref', async (c) => communityPage(c, await findCommunity(s, c.req.param('ref'))));

  app.post('/c/:ref/refresh', async (c) => {
    const raw = await c.req.parseBody();
    const row = await findCommunity(s, c.req.param('ref'));
    await requestRefresh(s, row);
    const back = localPath(raw.back).split(/[?#]/)[0];
    return c.redirect(`${back}?flash=refreshing&ref=${encodeURIComponent(row.ref)}`, 303);
  });

  app.post('/c/:ref/refresh-policy', async (c) => {
    const raw = await c.req.parseBody();
    const row = await findCommunity(s, c.req.param('ref'));
    // Form fields are strings; an empty one means "keep what it is".
    const fields: Record<string, unknown> = {};
    for (const key of ['refreshPolicy', 'refreshSeconds', 'minRefreshSeconds', 'maxRefreshSeconds'] as const) {
      const v = str(raw[key])?.trim().slice(0, 20);
      if (v) fields[key] = key === 'refreshPolicy' ? v : /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
    }
    // A policy of fixed without an interval keeps the current fixed one.
    try {
      await changeRefresh(s, row, parseWith(patchBodySchema, fields));
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 400) throw err;
      return communityPage(c, row, { flash: `Not saved: ${err.message}`, status: 400 });
    }
    return c.redirect(`${communityPath(row.ref)}?flash=policy-saved&ref=${encodeURIComponent(row.ref)}`, 303);
  });

  app.get('/c/:ref/remove', async (c) => {
    const row = await findCommunity(s, c.req.param('ref'));
    const community = await withStatus(s, row);
    return c.render(<ConfirmRemovePage community={community} />, { title: `Remove ${community.ref}` });
  });

  app.post('/c/:ref/remove', async (c) => {
    const row = await findCommunity(s, c.req.param('ref'));
    await stopTracking(s, row);
    return c.redirect(`/?flash=removed&ref=${encodeURIComponent(row.ref)}`, 303);
  });

  app.get('/posts', async (c) => {
    const page = parsePageQuery({ limit: c.req.query('limit'), before: c.req.query('before') });
    const result = await newest(s, page.limit, page.before);
    return c.render(<PostsPage {...result} limit={page.limit} />, { title: 'Newest posts' });
  });

  app.get('/login', (c) => c.render(<LoginPage next={localPath(c.req.query('next'))} />, { title: 'Log in' }));

  app.post('/login', async (c) => {
    const raw = await c.req.parseBody();
    const next = localPath(raw.next);
    if (!token) return c.redirect(next, 303);
    const client = info.clientIp(c);
    const wait = logins.retryAfter(client);
    if (wait > 0) {
      c.header('Retry-After', String(wait));
      c.status(429);
      return c.render(<LoginPage next={next} error={`Too many failed logins from your address; try again in ${wait} s.`} />, {
        title: 'Log in',
      });
    }
    const given = str(raw.token);
    if (!tokenMatches(token, given)) {
      logins.recordFailure(client);
      c.status(401);
      return c.render(<LoginPage next={next} error="That is not the API token." />, { title: 'Log in' });
    }
    // Secure over TLS: direct https, or X-Forwarded-Proto: https from a trusted proxy.
    setCookie(c, TOKEN_COOKIE, given!, { httpOnly: true, sameSite: 'Strict', path: '/', secure: info.isTls(c) });
    return c.redirect(`/?flash=logged-in`, 303);
  });

  app.post('/logout', (c) => {
    deleteCookie(c, TOKEN_COOKIE, { path: '/', secure: info.isTls(c) });
    return c.redirect('/?flash=logged-out', 303);
  });

  return app;
}

export { communityPath };
