// /api/admin: runtime configuration, the REST side of the admin page (/admin).
//   GET    /communities?state=failing|paused|all&limit=&before=   what needs attention, with the last error
//   POST   /communities/:ref/pause                               stop syncing until resumed → 200 the community
//   POST   /communities/:ref/resume                              sync at once, then as before → 200 the community
//   GET    /instances                                             hosts with their request budget
//   PUT    /instances/:host/budget  {"requestsPerSecond": n}      a host's own rate (every worker, next request)
//   DELETE /instances/:host/budget                                back to INSTANCE_REQUESTS_PER_SECOND → 204
// Shard nodes and rebalancing are /api/shards. Writes need the API token (app.ts, for all of /api).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { attentionPage, type CommunityRow } from '../../src/db/communities.js';
import {
  deleteInstanceBudgetOverride,
  instanceBudgets,
  MAX_REQUESTS_PER_SECOND,
  MIN_REQUESTS_PER_SECOND,
  setInstanceBudgetOverride,
  type InstanceBudgetRow,
} from '../../src/db/instance-budget.js';
import { pauseTracking, resumeTracking } from '../../src/tracking.js';
import { ApiError } from '../errors.js';
import { errorResponses } from '../openapi/common.js';
import { CommunityRefParam, CommunitySchema } from '../openapi/schemas.js';
import { catalogStatus, presentCommunity, type CommunityJson } from '../presenters.js';
import { findCommunity, type Services } from '../service.js';
import { encodeCommunityCursor, idPageQuerySchema, jsonObjectBody, validationHook } from '../validation.js';

// ---- Shapes ----

const isoTime = z.string().openapi({ format: 'date-time', example: '2026-01-01T12:00:00.000Z' });

export const AdminCommunitySchema = CommunitySchema.extend({
  pausedAt: isoTime.nullable().openapi({ description: 'Since when tracking is paused; null when it is not' }),
}).openapi('AdminCommunity');

const AdminCommunitiesPageSchema = z
  .object({
    communities: z.array(AdminCommunitySchema),
    next: z.string().nullable().openapi({ description: 'The `before` cursor of the next page; null on the last page' }),
  })
  .openapi('AdminCommunitiesPage');

export const ATTENTION_STATES = ['failing', 'paused', 'all'] as const;

const AttentionQuery = idPageQuerySchema('c').extend({
  state: z.enum(ATTENTION_STATES, { message: 'must be "failing", "paused" or "all"' }).optional().openapi({
    description:
      '`failing` (default): the last sync failed, found nothing, or the source is dormant, or tracking is paused; `paused`; `all`',
  }),
});

const InstanceSchema = z
  .object({
    host: z.string().openapi({ description: 'host[:port], as requests name it', example: 'lemmy.world' }),
    requestsPerSecond: z.number().openapi({ description: 'The rate in force: the override, or INSTANCE_REQUESTS_PER_SECOND' }),
    override: z.number().nullable().openapi({ description: "This host's own rate; null when the default applies" }),
    overrideUpdatedAt: isoTime.nullable(),
    communities: z.number().int().openapi({ description: 'Tracked sources on this host' }),
    nextSlotAt: isoTime.nullable().openapi({ description: 'When the next request to this host may go (the shared budget)' }),
    lastOkAt: isoTime.nullable(),
    lastFailureAt: isoTime.nullable(),
  })
  .openapi('InstanceBudget');

const InstancesSchema = z
  .object({
    defaultRequestsPerSecond: z.number().openapi({ description: 'INSTANCE_REQUESTS_PER_SECOND' }),
    instances: z.array(InstanceSchema),
  })
  .openapi('InstanceBudgets');

/** host[:port] as URLs name it: a DNS name or IPv4 address, or an [IPv6] address, lower-case. */
const HOST = /^(?:\[[0-9a-f:.]{2,45}\]|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)(?::\d{1,5})?$/;

const HostParam = z
  .string()
  .max(260, 'must be at most 260 characters')
  .transform((h) => h.toLowerCase())
  .refine((h) => HOST.test(h), 'must be a host name with an optional :port, e.g. lemmy.world or 127.0.0.1:8536')
  .openapi({ description: 'host[:port], e.g. `lemmy.world`', example: 'lemmy.world' });

export const BudgetBodySchema = z
  .strictObject({
    requestsPerSecond: z
      .number({ message: 'must be a number' })
      .min(MIN_REQUESTS_PER_SECOND, `must be at least ${MIN_REQUESTS_PER_SECOND}`)
      .max(MAX_REQUESTS_PER_SECOND, `must be at most ${MAX_REQUESTS_PER_SECOND}`)
      .openapi({ description: 'Requests per second to this host, from every worker together', example: 0.5 }),
  })
  .openapi('InstanceBudgetOverride');

// ---- Presenting ----

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** A community as the admin lists show it: the catalog's status (no Temporal query per row) and pausedAt. */
export function presentAdminCommunity(row: CommunityRow): CommunityJson & { pausedAt: string | null } {
  return { ...presentCommunity(row, catalogStatus(row)), pausedAt: iso(row.paused_at) };
}

export function presentInstance(row: InstanceBudgetRow, defaultRate: number): z.infer<typeof InstanceSchema> {
  return {
    host: row.host,
    requestsPerSecond: row.override ?? defaultRate,
    override: row.override,
    overrideUpdatedAt: iso(row.overrideUpdatedAt),
    communities: row.communities,
    nextSlotAt: iso(row.nextSlot),
    lastOkAt: iso(row.lastOkAt),
    lastFailureAt: iso(row.lastFailureAt),
  };
}

// ---- Operations shared with the admin page ----

export async function adminCommunities(s: Services, q: { state?: (typeof ATTENTION_STATES)[number]; limit: number; before?: number }) {
  const { rows, nextBeforeId } = await attentionPage(s.catalog, q.state ?? 'failing', q.limit, q.before);
  return { communities: rows.map(presentAdminCommunity), next: nextBeforeId === null ? null : encodeCommunityCursor(nextBeforeId) };
}

export async function adminInstances(s: Services) {
  const rate = s.config.INSTANCE_REQUESTS_PER_SECOND;
  return { defaultRequestsPerSecond: rate, instances: (await instanceBudgets(s.catalog)).map((r) => presentInstance(r, rate)) };
}

/** Sets a host's override and answers with the host's budget as listed. */
export async function setInstanceBudget(s: Services, host: string, requestsPerSecond: number) {
  await setInstanceBudgetOverride(s.catalog, host, requestsPerSecond);
  const rows = await instanceBudgets(s.catalog);
  return presentInstance(
    rows.find((r) => r.host === host)!,
    s.config.INSTANCE_REQUESTS_PER_SECOND,
  );
}

export async function dropInstanceBudget(s: Services, host: string): Promise<void> {
  if (!(await deleteInstanceBudgetOverride(s.catalog, host)))
    throw new ApiError(404, 'override_not_found', `${host} has no request budget of its own`);
}

/** host[:port] from a path or a form, validated like the REST parameter (400 naming `host`). */
export function parseHost(raw: unknown): string {
  const r = HostParam.safeParse(raw);
  if (r.success) return r.data;
  throw new ApiError(400, 'invalid_input', `host: ${r.error.issues[0]?.message ?? 'invalid'}`, { field: 'host' });
}

// ---- Routes ----

const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });

const listRoute = createRoute({
  method: 'get',
  path: '/communities',
  tags: ['admin'],
  summary: 'Communities that need attention (failing, not found, dormant, paused), with their last error',
  request: { query: AttentionQuery },
  responses: { 200: json(AdminCommunitiesPageSchema, 'A page, most recently tracked first'), ...errorResponses(400, 429, 503) },
});

const refParams = z.object({ ref: CommunityRefParam });

const pauseRoute = createRoute({
  method: 'post',
  path: '/communities/{ref}/pause',
  tags: ['admin'],
  summary: 'Pause tracking: a sync under way finishes, none starts (refreshes are ignored) until resumed',
  request: { params: refParams },
  responses: {
    200: json(AdminCommunitySchema, 'Paused (also when it already was): status.state is "paused"'),
    ...errorResponses(400, 401, 403, 404, 429, 503),
  },
});

const resumeRoute = createRoute({
  method: 'post',
  path: '/communities/{ref}/resume',
  tags: ['admin'],
  summary: 'Resume tracking: a sync at once, then the interval as before',
  request: { params: refParams },
  responses: {
    200: json(AdminCommunitySchema, 'Resumed (also when it was not paused)'),
    ...errorResponses(400, 401, 403, 404, 429, 503),
  },
});

const instancesRoute = createRoute({
  method: 'get',
  path: '/instances',
  tags: ['admin'],
  summary: 'Hosts with their per-instance request budget and override',
  responses: { 200: json(InstancesSchema, 'Every host with a tracked source, a budget or an override'), ...errorResponses(429, 503) },
});

const hostParams = z.object({ host: HostParam });

const putBudgetRoute = createRoute({
  method: 'put',
  path: '/instances/{host}/budget',
  tags: ['admin'],
  summary: "Set a host's own request rate, overriding INSTANCE_REQUESTS_PER_SECOND for it (every worker, from its next request)",
  middleware: [jsonObjectBody] as const,
  request: { params: hostParams, body: { required: true, content: { 'application/json': { schema: BudgetBodySchema } } } },
  responses: { 200: json(InstanceSchema, 'The host with its new budget'), ...errorResponses(400, 401, 403, 413, 415, 429, 503) },
});

const deleteBudgetRoute = createRoute({
  method: 'delete',
  path: '/instances/{host}/budget',
  tags: ['admin'],
  summary: "Drop a host's override: INSTANCE_REQUESTS_PER_SECOND applies again",
  request: { params: hostParams },
  responses: { 204: { description: 'Dropped' }, ...errorResponses(400, 401, 403, 404, 429, 503) },
});

export function adminRoutes(s: Services): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.openapi(listRoute, async (c) => c.json(await adminCommunities(s, c.req.valid('query')), 200));

  app.openapi(pauseRoute, async (c) => {
    const row = await pauseTracking(s, await findCommunity(s, c.req.valid('param').ref));
    return c.json(presentAdminCommunity(row), 200);
  });

  app.openapi(resumeRoute, async (c) => {
    const row = await resumeTracking(s, await findCommunity(s, c.req.valid('param').ref));
    return c.json(presentAdminCommunity(row), 200);
  });

  app.openapi(instancesRoute, async (c) => c.json(await adminInstances(s), 200));

  app.openapi(putBudgetRoute, async (c) => {
    const { host } = c.req.valid('param');
    return c.json(await setInstanceBudget(s, host, c.req.valid('json').requestsPerSecond), 200);
  });

  app.openapi(deleteBudgetRoute, async (c) => {
    await dropInstanceBudget(s, c.req.valid('param').host);
    return c.body(null, 204);
  });

  return app;
}
