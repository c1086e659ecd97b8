/** @jsxImportSource hono/jsx */
// /admin on the website: runtime configuration (pages/admin.tsx), behind API_TOKEN. With a token
// configured, the page itself needs the login cookie (without it: a redirect to /login) and every
// form needs it too (or a bearer header). Forms POST, then redirect back (303) with a flash; a
// refused one renders the page again with the reason and a 4xx. The same operations as
// /api/admin, /api/communities and /api/shards.
import { Hono, type Context } from 'hono';
import { requireWebToken, tokenMatches, webAuthorized } from '../auth.js';
import { ApiError } from '../errors.js';
import type { RequestInfo } from '../guards.js';
import { adminCommunities, adminInstances, ATTENTION_STATES, dropInstanceBudget, parseHost, setInstanceBudget } from '../routes/admin.js';
import { changeRefresh, findCommunity, type Services } from '../service.js';
import { idPageQuerySchema, parseWith, patchBodySchema } from '../validation.js';
import { pauseTracking, requestRefresh, resumeTracking } from '../../src/tracking.js';
import { shardStatus } from '../../src/db/sharding/moves.js';
import { shardNodeUrl, withoutPassword } from '../../src/db/sharding/router.js';
import { redactUrl } from '../../src/config.js';
import { startRebalance } from '../../src/rebalancing.js';
import { localPath, pageContext } from './components.js';
import { AdminPage, type AdminFilter } from './pages/admin.js';

const NODE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const FLASH: Record<string, (subject: string) => string> = {
  paused: (ref) => `Paused ${ref}: no sync until you resume it.`,
  resumed: (ref) => `Resumed ${ref}: it syncs now.`,
  refreshing: (ref) => `Refresh of ${ref} requested.`,
  interval: (ref) => `Refresh interval of ${ref} saved.`,
  'budget-set': (host) => `Request budget of ${host} saved; every worker uses it from its next request.`,
  'budget-dropped': (host) => `${host} uses the default request budget again.`,
  'node-added': (node) => `Shard node ${node} added. Rebalance to move shards onto it.`,
  rebalancing: () => 'Rebalancing started: shards move in the background.',
};

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** Back to the admin page (a filter kept), never elsewhere. */
function backTo(raw: unknown): string {
  const path = localPath(raw);
  return path === '/admin' || path.startsWith('/admin?') ? path.split('#')[0] : '/admin';
}

/** `path` (maybe with a query and a #section) with a flash to show there. */
function withFlash(path: string, kind: string, subject: string): string {
  const [base, hash] = path.split('#');
  const clean = base.replace(/([?&])(flash|subject)=[^&]*/g, '$1').replace(/[?&]+$/, '');
  return `${clean}${clean.includes('?') ? '&' : '?'}flash=${kind}&subject=${encodeURIComponent(subject)}${hash ? `#${hash}` : ''}`;
}

export function adminWebRoutes(s: Services, _info: RequestInfo): Hono {
  const app = new Hono();
  const token = s.config.API_TOKEN;

  // The page shows hosts, node URLs and errors: with a token, only to who logged in (the cookie),
  // or a script that sends the token as a bearer header.
  const bearer = (c: Context) => /^Bearer (.+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
  app.use('*', async (c, next) => {
    if (c.req.method === 'GET' && !webAuthorized(c, token) && !(token && tokenMatches(token, bearer(c))))
      return c.redirect(`/login?next=${encodeURIComponent(c.req.path)}`, 302);
    await next();
  });
  app.use('*', requireWebToken(token));

  const page = async (c: Context, opts: { error?: string; status?: 400 | 404 | 409 | 422 | 503 } = {}) => {
    const rawState = c.req.query('state');
    const filter: AdminFilter = (ATTENTION_STATES as readonly string[]).includes(rawState ?? '') ? (rawState as AdminFilter) : 'failing';
    const pageQuery = parseWith(idPageQuerySchema('c'), { limit: c.req.query('limit'), before: c.req.query('before') }, 'query');
    const [list, budgets, shards] = await Promise.all([
      adminCommunities(s, { state: filter, limit: pageQuery.limit, before: pageQuery.before }),
      adminInstances(s),
      shardStatus(s.router, redactUrl).catch((err: Error) => ({ error: `The shard nodes cannot be listed: ${redactUrl(err.message)}` })),
    ]);
    const kind = c.req.query('flash');
    const flash = kind && FLASH[kind] ? FLASH[kind]((c.req.query('subject') ?? '').slice(0, 300)) : undefined;
    if (opts.status) c.status(opts.status);
    return c.render(
      <AdminPage
        ctx={pageContext(s, c)}
        filter={filter}
        communities={list.communities}
        next={list.next}
        defaultRequestsPerSecond={budgets.defaultRequestsPerSecond}
        instances={budgets.instances}
        shards={shards}
        flash={flash}
        error={opts.error}
      />,
      { title: 'Admin' },
    );
  };

  /** Runs a form's action; a refused one (4xx) shows the page again with the reason. */
  const form = async (c: Context, action: (raw: Record<string, unknown>) => Promise<string>) => {
    const raw = (await c.req.parseBody()) as Record<string, unknown>;
    try {
      return c.redirect(await action(raw), 303);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status >= 500 || err.status === 401 || err.status === 403) throw err;
      const status = ([400, 404, 409, 422] as const).find((x) => x === err.status) ?? 400;
      return page(c, { error: `Not done: ${err.message}`, status });
    }
  };

  app.get('/', (c) => page(c));

  app.post('/communities/:ref/pause', (c) =>
    form(c, async (raw) => {
      const row = await pauseTracking(s, await findCommunity(s, c.req.param('ref')));
      return withFlash(backTo(raw.back), 'paused', row.ref);
    }),
  );

  app.post('/communities/:ref/resume', (c) =>
    form(c, async (raw) => {
      const row = await resumeTracking(s, await findCommunity(s, c.req.param('ref')));
      return withFlash(backTo(raw.back), 'resumed', row.ref);
    }),
  );

  app.post('/communities/:ref/refresh', (c) =>
    form(c, async (raw) => {
      const row = await findCommunity(s, c.req.param('ref'));
      await requestRefresh(s, row);
      return withFlash(backTo(raw.back), 'refreshing', row.ref);
    }),
  );

  app.post('/communities/:ref/interval', (c) =>
    form(c, async (raw) => {
      const row = await findCommunity(s, c.req.param('ref'));
      const v = str(raw.refreshSeconds).trim().slice(0, 20);
      const fields = parseWith(patchBodySchema, { refreshSeconds: /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v });
      await changeRefresh(s, row, fields);
      return withFlash(backTo(raw.back), 'interval', row.ref);
    }),
  );

  app.post('/instances/budget', (c) =>
    form(c, async (raw) => {
      const host = parseHost(str(raw.host).trim());
      const v = str(raw.requestsPerSecond).trim().slice(0, 30);
      const rate = v === '' ? Number.NaN : Number(v);
      if (!Number.isFinite(rate) || rate < 0.01 || rate > 1000)
        throw new ApiError(400, 'invalid_input', 'requestsPerSecond: must be a number from 0.01 to 1000', { field: 'requestsPerSecond' });
      await setInstanceBudget(s, host, rate);
      return withFlash('/admin#instances', 'budget-set', host);
    }),
  );

  app.post('/instances/budget/delete', (c) =>
    form(c, async (raw) => {
      const host = parseHost(str(raw.host).trim());
      await dropInstanceBudget(s, host);
      return withFlash('/admin#instances', 'budget-dropped', host);
    }),
  );

  app.post('/shards/nodes', (c) =>
    form(c, async (raw) => {
      const name = str(raw.name).trim();
      const url = str(raw.url).trim();
      if (!NODE_NAME.test(name))
        throw new ApiError(
          400,
          'invalid_name',
          'name must be 1-63 characters: lower-case letters, digits, "-" or "_", starting with a letter or digit',
          {
            field: 'name',
          },
        );
      if (!/^postgres(ql)?:\/\/\S+$/.test(url))
        throw new ApiError(400, 'invalid_url', 'url must be a postgres:// or postgresql:// connection string', { field: 'url' });
      const existing = await shardNodeUrl(s.catalog, name);
      if (existing && existing !== withoutPassword(url))
        throw new ApiError(409, 'node_exists', `a node named "${name}" is already registered with another URL; pick another name`);
      try {
        await s.router.addNode(name, url, s.log);
      } catch (err) {
        throw new ApiError(422, 'node_unreachable', redactUrl((err as Error).message));
      }
      return withFlash('/admin#shards', 'node-added', name);
    }),
  );

  app.post('/shards/rebalance', (c) =>
    form(c, async () => {
      await startRebalance(s.temporal, s.config.TEMPORAL_TASK_QUEUE);
      return withFlash('/admin#shards', 'rebalancing', '');
    }),
  );

  return app;
}
