// The JSON shapes of the REST API (presenters.ts, users.ts, service.ts) as zod schemas: the
// OpenAPI document's components, and what the conformance tests check every answer against.
// Objects list every field the API sends (all required; null where the value may be missing).
import { z } from '@hono/zod-openapi';

const isoTime = z.string().openapi({ format: 'date-time', example: '2026-01-01T12:00:00.000Z' });

export const CommunityRefParam = z.string().openapi({
  description: 'The numeric id, `name@host` (e.g. `technology@lemmy.world`), or a ref this API gave (`rss:…`, `mastodon:…`)',
  example: 'technology@lemmy.world',
});

export const CommunitySchema = z
  .object({
    id: z.number().int(),
    kind: z.string().openapi({ description: '`lemmy`, `rss` or `mastodon`', example: 'lemmy' }),
    ref: z.string().openapi({ example: 'technology@lemmy.world' }),
    url: z.string().openapi({ description: "The community's page, the feed, or the timeline's web URL" }),
    instance: z.string().openapi({ example: 'https://lemmy.world' }),
    host: z.string().openapi({ example: 'lemmy.world' }),
    name: z.string().openapi({ example: 'technology' }),
    title: z.string().nullable(),
    description: z.string().nullable(),
    icon: z.string().nullable(),
    banner: z.string().nullable(),
    nsfw: z.boolean(),
    subscribers: z.number().int().nullable(),
    postsCount: z.number().int().nullable(),
    postsStored: z.number().int().nullable(),
    refreshSeconds: z
      .number()
      .int()
      .openapi({ description: 'The current interval (fixed, adapted, or backed off); status.reason says why' }),
    refreshPolicy: z.string().openapi({ description: '`fixed` or `adaptive`', example: 'adaptive' }),
    minRefreshSeconds: z.number().int(),
    maxRefreshSeconds: z.number().int(),
    shard: z.number().int().openapi({ description: 'The logical shard holding its posts' }),
    workflowId: z.string().openapi({ example: 'community:technology@lemmy.world' }),
    status: z.object({
      state: z.string().openapi({
        description: 'syncing, waiting, failing, not_found, dormant, paused, stopped, unknown (Temporal not answering)…',
        example: 'waiting',
      }),
      lastSyncAt: isoTime.nullable(),
      nextSyncAt: isoTime.nullable(),
      lastError: z.object({ code: z.string(), message: z.string(), at: isoTime.nullable() }).nullable(),
      syncs: z.number().int().nullable(),
      reason: z.string().nullable(),
      consecutiveFailures: z.number().int(),
      postsPerHour: z.number().nullable(),
    }),
    lastUpdate: isoTime.nullable(),
    createdAt: isoTime,
    updatedAt: isoTime,
  })
  .openapi('Community');

export const PostSchema = z
  .object({
    id: z.string().openapi({ example: '12:345678' }),
    communityId: z.number().int(),
    communityRef: z.string().nullable(),
    lemmyId: z.number().int(),
    apId: z.string(),
    title: z.string(),
    url: z.string().nullable(),
    body: z.string().nullable(),
    author: z.string().nullable(),
    thumbnail: z.string().nullable(),
    published: isoTime,
    updated: isoTime.nullable(),
    score: z.number().int(),
    upvotes: z.number().int(),
    downvotes: z.number().int(),
    comments: z.number().int(),
    nsfw: z.boolean(),
    featured: z.boolean(),
    fetchedAt: isoTime,
  })
  .openapi('Post');

const next = z.string().nullable().openapi({ description: 'The `before` cursor of the next page; null on the last page' });
const partial = {
  partial: z.boolean().openapi({ description: 'True when a shard node did not answer: posts on it are missing' }),
  missingNodes: z.array(z.string()),
};

export const CommunitiesPageSchema = z.object({ communities: z.array(CommunitySchema), next }).openapi('CommunitiesPage');
export const CommunityPostsPageSchema = z.object({ posts: z.array(PostSchema), next }).openapi('CommunityPostsPage');
export const PostsPageSchema = z.object({ posts: z.array(PostSchema), next, ...partial }).openapi('PostsPage');

export const RefreshRequestedSchema = z.object({ ref: z.string(), refreshRequested: z.literal(true) }).openapi('RefreshRequested');

export const UserSchema = z.object({ name: z.string(), createdAt: isoTime }).openapi('User');
export const NewUserSchema = z
  .object({ user: UserSchema, apiKey: z.string().openapi({ description: 'The key, shown once: send it as Authorization: Bearer <key>' }) })
  .openapi('NewUser');
export const ProfileSchema = z
  .object({
    user: z.object({
      name: z.string(),
      createdAt: isoTime,
      follows: z.object({ communities: z.number().int(), users: z.number().int() }),
      followers: z.number().int(),
    }),
  })
  .openapi('Profile');
export const FollowsSchema = z.object({ communities: z.array(CommunitySchema), users: z.array(UserSchema) }).openapi('Follows');
export const ActivitySchema = z
  .object({
    id: z.number().int(),
    actor: z.string().openapi({ example: 'user:alice' }),
    verb: z.string().openapi({ example: 'follow' }),
    object: z.string().openapi({ example: 'community:technology@lemmy.world' }),
    target: z.string().nullable(),
    published: isoTime,
  })
  .openapi('Activity');
export const ActivitiesPageSchema = z.object({ activities: z.array(ActivitySchema), next }).openapi('ActivitiesPage');

const Check = z.object({ ok: z.boolean(), error: z.string().optional() }).openapi('HealthCheck');
export const HealthSchema = z
  .object({
    status: z.enum(['ok', 'degraded']),
    checks: z.object({ catalog: Check, shards: z.record(z.string(), Check), temporal: Check }),
  })
  .openapi('Health');

export const ShardNodeSchema = z
  .object({
    node: z.string(),
    url: z.string().openapi({ description: 'Without its password' }),
    up: z.boolean(),
    error: z.string().optional(),
    shards: z.array(z.number().int()),
    communities: z.number().int(),
    posts: z.number().int().nullable(),
  })
  .openapi('ShardNode');
export const ShardStatusSchema = z.object({ logicalShards: z.number().int(), nodes: z.array(ShardNodeSchema) }).openapi('ShardStatus');
export const RebalanceSchema = z.object({ workflowId: z.string(), runId: z.string() }).openapi('Rebalance');
