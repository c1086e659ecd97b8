/** @jsxImportSource hono/jsx */
// The website: the same service layer as the REST API, rendered on the server. Forms POST and
// redirect (303); validation errors are shown inline next to the field.
import { Hono, type Context } from 'hono';
import { deleteCookie, setCookie } from 'hono/cookie';
import { sameOrigin, TOKEN_COOKIE, tokenMatches, webAuthorized } from '../auth.js';
import { ApiError } from '../errors.js';
import { addCommunity, findCommunity, listWithStatus, newest, postsOf, refresh, remove, withStatus, type Services } from '../service.js';
import type { ApiDeps } from '../server.js';
import { addBodySchema, parsePageQuery, parseWith, toAddInput } from '../validation.js';
import {
  CommunityPage,
  ConfirmRemovePage,
  ErrorPage,
  HomePage,
  LoginPage,
  PostsPage,
  communityPath,
  type AddFormState,
  type PageContext,
} from './pages.js';


function pageContext(deps: ApiDeps, c?: Context): PageContext {
  return {
    temporalUiUrl: deps.config.TEMPORAL_UI_URL,
    namespace: deps.config.TEMPORAL_NAMESPACE,
    tokenRequired: Boolean(deps.config.API_TOKEN),
    loggedIn: c ? Boolean(deps.config.API_TOKEN) && webAuthorized(c, deps.config.API_TOKEN) : false,
  };
}

export function renderErrorPage(deps: ApiDeps, status: number, message: string): string {
  return (<ErrorPage ctx={pageContext(deps)} status={status} message={message} login={status === 401} />).toString();
}

/** A same-site path to go back to after a form; anything else becomes "/". */
function localPath(v: unknown): string {
  return typeof v === 'string' && /^\/(?![/\\])[^\s]*$/.test(v) && v.length < 1000 ? v : '/';
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

const FLASH: Record<string, (ref: string) => string> = {
  added: (ref) => `Now tracking ${ref}. The first sync is under way.`,
  exists: (ref) => `${ref} was already tracked.`,
  refreshing: (ref) => `Refresh of ${ref} requested.`,
  removed: (ref) => `Stopped tracking ${ref} and deleted its posts.`,
  'logged-in': () => 'Logged in.',
  'logged-out': () => 'Logged out.',
};

function flashOf(c: Context): string | undefined {
  const kind = c.req.query('flash');
  const fn = kind ? FLASH[kind] : undefined;
  return fn ? fn((c.req.query('ref') ?? '').slice(0, 300)) : undefined;
}

export function webRoutes(s: Services): Hono {
  const app = new Hono();
  const token = s.config.API_TOKEN;

  // Every form POST: same origin, and the token when one is configured (login excepted).
  const guard = (needsToken: boolean) => async (c: Context, next: () => Promise<void>) => {
    if (c.req.method === 'POST') {
      if (!sameOrigin(c)) throw new ApiError(403, 'forbidden', 'Cross-site form posts are not accepted');
      if (needsToken && !webAuthorized(c, token)) throw new ApiError(401, 'unauthorized', 'Changes need the API token: log in first.');
    }
    await next();
  };
  app.use('/communities', guard(true));
  app.use('/c/*', guard(true));
  app.use('/login', guard(false));
  app.use('/logout', guard(false));

  const home = async (c: Context, form: AddFormState, status: 200 | 400 | 422 = 200) => {
    const communities = await listWithStatus(s);
    return c.html(<HomePage ctx={pageContext(s, c)} communities={communities} form={form} flash={flashOf(c)} />, status);
  };

  app.get('/', (c) => home(c, { values: {}, errors: {} }));

  app.post('/communities', async (c) => {
    const raw = await c.req.parseBody();
    const values = {
      community: str(raw.community)?.slice(0, 700),
      instance: str(raw.instance)?.slice(0, 500),
      name: str(raw.name)?.slice(0, 200),
      refreshSeconds: str(raw.refreshSeconds)?.slice(0, 20),
    };
    const body: Record<string, unknown> = {};
    if (values.community?.trim()) body.community = values.community;
    else {
      if (values.instance?.trim() || values.name?.trim()) {
        body.instance = values.instance ?? '';
        body.name = values.name ?? '';
      }
    }
    const form: AddFormState = { values, errors: {} };
    if (!('community' in body) && !('instance' in body)) {
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
      const { community, created } = await addCommunity(s, toAddInput(parseWith(addBodySchema, body)));
      return c.redirect(`/?flash=${created ? 'added' : 'exists'}&ref=${encodeURIComponent(community.ref)}`, 303);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status >= 500 || err.status === 401 || err.status === 403) throw err;
      const m = /^(community|instance|name|refreshSeconds): (.*)$/.exec(err.message);
      if (m) form.errors[m[1]] = m[2];
      else form.general = err.message;
      return home(c, form, err.status === 422 ? 422 : 400);
    }
  });

  app.get('/c/:ref', async (c) => {
    const page = parsePageQuery({ limit: c.req.query('limit'), before: c.req.query('before') });
    const row = await findCommunity(s, c.req.param('ref'));
    const [community, posts] = await Promise.all([withStatus(s, row), postsOf(s, row, page.limit, page.before)]);
    return c.html(<CommunityPage ctx={pageContext(s, c)} c={community} posts={posts.posts} next={posts.next} flash={flashOf(c)} limit={page.limit} />);
  });

  app.post('/c/:ref/refresh', async (c) => {
    const raw = await c.req.parseBody();
    const row = await findCommunity(s, c.req.param('ref'));
    await refresh(s, row);
    const back = localPath(raw.back).split(/[?#]/)[0];
    return c.redirect(`${back}?flash=refreshing&ref=${encodeURIComponent(row.ref)}`, 303);
  });

  app.get('/c/:ref/remove', async (c) => {
    const row = await findCommunity(s, c.req.param('ref'));
    return c.html(<ConfirmRemovePage ctx={pageContext(s, c)} c={await withStatus(s, row)} />);
  });

  app.post('/c/:ref/remove', async (c) => {
    const row = await findCommunity(s, c.req.param('ref'));
    await remove(s, row);
    return c.redirect(`/?flash=removed&ref=${encodeURIComponent(row.ref)}`, 303);
  });

  app.get('/posts', async (c) => {
    const page = parsePageQuery({ limit: c.req.query('limit'), before: c.req.query('before') });
    const result = await newest(s, page.limit, page.before);
    return c.html(<PostsPage ctx={pageContext(s, c)} {...result} limit={page.limit} />);
  });

  app.get('/login', (c) => c.html(<LoginPage ctx={pageContext(s, c)} next={localPath(c.req.query('next'))} />));

  app.post('/login', async (c) => {
    const raw = await c.req.parseBody();
    const next = localPath(raw.next);
    if (!token) return c.redirect(next, 303);
    const given = str(raw.token);
    if (!tokenMatches(token, given)) {
      return c.html(<LoginPage ctx={pageContext(s, c)} next={next} error="That is not the API token." />, 401);
    }
    setCookie(c, TOKEN_COOKIE, given!, { httpOnly: true, sameSite: 'Strict', path: '/', secure: new URL(c.req.url).protocol === 'https:' });
    return c.redirect(`/?flash=logged-in`, 303);
  });

  app.post('/logout', (c) => {
    deleteCookie(c, TOKEN_COOKIE, { path: '/' });
    return c.redirect('/?flash=logged-out', 303);
  });

  return app;
}

export { communityPath };
