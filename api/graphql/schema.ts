// The GraphQL schema, code-first (Pothos), over the REST API's service functions: the same lookups,
// validation (zod schemas, limits, keyset cursors) and presenters, so both answer the same data.
// Connections are Relay-style; their cursors are the REST API's `before` cursors, so `after: X`
// here is `?before=X` there. A list of communities with their posts loads the posts with one
// statement per shard node (context.ts), not one per community.
import SchemaBuilder from '@pothos/core';
import RelayPlugin from '@pothos/plugin-relay';
import type { GraphQLSchema } from 'graphql';
import { encodeCursor } from '../../src/db/posts.js';
import { requestRefresh, stopTracking } from '../../src/tracking.js';
import { ApiError } from '../errors.js';
import type { CommunityJson, PostJson } from '../presenters.js';
import { addCommunity, changeRefresh, findCommunity, listWithStatus, newest, postsOf, withStatus } from '../service.js';
import { feedOf, followsOf, userProfile, type UserJson } from '../users.js';
import {
  addBodySchema,
  DEFAULT_LIMIT,
  encodeCommunityCursor,
  MAX_LIMIT,
  parseCommunitiesQuery,
  parsePageQuery,
  parseWith,
  patchBodySchema,
  toAddInput,
} from '../validation.js';
import { requireAdmin, type GraphQLContext } from './context.js';

const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  Scalars: { SafeInt: { Input: number; Output: number } };
  DefaultFieldNullability: false;
  DefaultEdgesNullability: false;
  DefaultNodeNullability: false;
}>({
  defaultFieldNullability: false,
  plugins: [RelayPlugin],
  relay: {
    cursorType: 'String',
    clientMutationId: 'omit',
    nodeQueryOptions: false,
    nodesQueryOptions: false,
    edgesFieldOptions: { nullable: false },
    nodeFieldOptions: { nullable: false },
  },
});

builder.scalarType('SafeInt', {
  description: 'A whole number up to 2^53 - 1 (post ids of feeds and Mastodon are 52-bit hashes), sent as a JSON number',
  serialize: (n) => n,
  parseValue: (v) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new ApiError(400, 'invalid_input', 'expected a whole number');
    return v;
  },
});

/** `first` of a connection: 1..100, default 20 (the REST API's `limit`). */
const pageArgs = builder.args((t) => ({
  first: t.int({ defaultValue: DEFAULT_LIMIT, description: `How many, 1 to ${MAX_LIMIT}` }),
  after: t.string({ description: 'endCursor (or an edge cursor) of an earlier page' }),
}));

interface PageArgs {
  first?: number | null;
  after?: string | null;
}

/** `first`/`after` checked like the REST API's `limit`/`before`: 400 invalid_limit / invalid_cursor. */
function postPage(args: PageArgs) {
  return parsePageQuery({ limit: args.first == null ? undefined : String(args.first), before: args.after ?? undefined });
}

interface Connection<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

function connection<T>(nodes: T[], cursorOf: (node: T) => string, hasNextPage: boolean, hasPreviousPage: boolean): Connection<T> {
  const edges = nodes.map((node) => ({ cursor: cursorOf(node), node }));
  return {
    edges,
    pageInfo: {
      hasNextPage,
      hasPreviousPage,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges[edges.length - 1]?.cursor ?? null,
    },
  };
}

/** A post's cursor: the REST API's `next` when the page ends at this post. */
const postCursor = (p: PostJson) => encodeCursor({ published: p.published, communityId: p.communityId, lemmyId: p.lemmyId });

type PostConnectionShape = Connection<PostJson> & { partial: boolean; missingNodes: string[] };

const postConnection = (page: { posts: PostJson[]; next: string | null; partial?: boolean; missingNodes?: string[] }, after: unknown) => ({
  ...connection(page.posts, postCursor, page.next !== null, after != null),
  partial: page.partial ?? false,
  missingNodes: page.missingNodes ?? [],
});

// --- Types ------------------------------------------------------------------------------------

const RefreshPolicyEnum = builder.enumType('RefreshPolicy', {
  values: { fixed: { description: 'every refreshSeconds' }, adaptive: { description: 'adapted to the posting rate within min..max' } },
});

const SyncError = builder.objectRef<NonNullable<CommunityJson['status']['lastError']>>('SyncError').implement({
  description: "The last sync's failure",
  fields: (t) => ({
    code: t.exposeString('code'),
    message: t.exposeString('message'),
    at: t.exposeString('at', { nullable: true }),
  }),
});

const CommunityStatus = builder.objectRef<CommunityJson['status']>('CommunityStatus').implement({
  fields: (t) => ({
    state: t.exposeString('state', { description: 'syncing, waiting, failing, not_found, dormant, paused, stopped or unknown' }),
    lastSyncAt: t.exposeString('lastSyncAt', { nullable: true }),
    nextSyncAt: t.exposeString('nextSyncAt', { nullable: true }),
    lastError: t.field({ type: SyncError, nullable: true, resolve: (s) => s.lastError }),
    syncs: t.exposeInt('syncs', { nullable: true }),
    reason: t.exposeString('reason', { nullable: true }),
    consecutiveFailures: t.exposeInt('consecutiveFailures'),
    postsPerHour: t.exposeFloat('postsPerHour', { nullable: true }),
  }),
});

const Post = builder.objectRef<PostJson>('Post').implement({
  fields: (t) => ({
    id: t.exposeID('id', { description: '"<communityId>:<lemmyId>"' }),
    communityId: t.exposeInt('communityId'),
    communityRef: t.exposeString('communityRef', { nullable: true }),
    lemmyId: t.expose('lemmyId', { type: 'SafeInt' }),
    apId: t.exposeString('apId'),
    title: t.exposeString('title'),
    url: t.exposeString('url', { nullable: true }),
    body: t.exposeString('body', { nullable: true }),
    author: t.exposeString('author', { nullable: true }),
    thumbnail: t.exposeString('thumbnail', { nullable: true }),
    published: t.exposeString('published'),
    updated: t.exposeString('updated', { nullable: true }),
    score: t.exposeInt('score'),
    upvotes: t.exposeInt('upvotes'),
    downvotes: t.exposeInt('downvotes'),
    comments: t.exposeInt('comments'),
    nsfw: t.exposeBoolean('nsfw'),
    featured: t.exposeBoolean('featured'),
    fetchedAt: t.exposeString('fetchedAt'),
  }),
});

const PostConnection = builder.connectionObject(
  {
    type: Post,
    name: 'PostConnection',
    fields: (t) => ({
      partial: t.boolean({
        description: 'Across shard nodes: true when a node did not answer (its posts are missing from this page)',
        resolve: (c) => (c as PostConnectionShape).partial,
      }),
      missingNodes: t.stringList({ resolve: (c) => (c as PostConnectionShape).missingNodes }),
    }),
  },
  { name: 'PostEdge' },
);

const Community = builder.objectRef<CommunityJson>('Community');
Community.implement({
  description: 'A tracked source: a Lemmy community, a feed or a Mastodon timeline',
  fields: (t) => ({
    id: t.exposeInt('id'),
    kind: t.exposeString('kind', { description: 'lemmy, rss or mastodon' }),
    ref: t.exposeString('ref'),
    url: t.exposeString('url'),
    instance: t.exposeString('instance'),
    host: t.exposeString('host'),
    name: t.exposeString('name'),
    title: t.exposeString('title', { nullable: true }),
    description: t.exposeString('description', { nullable: true }),
    icon: t.exposeString('icon', { nullable: true }),
    banner: t.exposeString('banner', { nullable: true }),
    nsfw: t.exposeBoolean('nsfw'),
    subscribers: t.exposeInt('subscribers', { nullable: true }),
    postsCount: t.exposeInt('postsCount', { nullable: true }),
    postsStored: t.exposeInt('postsStored', { nullable: true }),
    refreshSeconds: t.exposeInt('refreshSeconds'),
    refreshPolicy: t.exposeString('refreshPolicy', { description: 'fixed or adaptive' }),
    minRefreshSeconds: t.exposeInt('minRefreshSeconds'),
    maxRefreshSeconds: t.exposeInt('maxRefreshSeconds'),
    shard: t.exposeInt('shard'),
    workflowId: t.exposeString('workflowId'),
    status: t.field({ type: CommunityStatus, resolve: (c) => c.status }),
    lastUpdate: t.exposeString('lastUpdate', { nullable: true }),
    createdAt: t.exposeString('createdAt'),
    updatedAt: t.exposeString('updatedAt'),
    posts: t.field({
      type: PostConnection,
      // Nullable: a shard node that does not answer costs its communities' posts (null, with a
      // shard_unavailable error), not the whole list.
      nullable: true,
      description:
        'Newest first. First pages of many communities are loaded together (one statement per shard node). Null, with a shard_unavailable error, when the node holding them does not answer.',
      args: pageArgs,
      resolve: async (c, args, ctx) => {
        const page = postPage(args);
        if (page.before === undefined) return postConnection(await ctx.firstPosts(page.limit).load(c), args.after);
        const row = await findCommunity(ctx.s, String(c.id));
        return postConnection(await postsOf(ctx.s, row, page.limit, page.before), args.after);
      },
    }),
  }),
});

const CommunityConnection = builder.connectionObject({ type: Community, name: 'CommunityConnection' }, { name: 'CommunityEdge' });

const FollowCounts = builder.objectRef<{ communities: number; users: number; followers: number }>('FollowCounts').implement({
  fields: (t) => ({
    communities: t.exposeInt('communities', { description: 'communities followed' }),
    users: t.exposeInt('users', { description: 'users followed' }),
    followers: t.exposeInt('followers', { description: 'users following this one' }),
  }),
});

const User = builder.objectRef<UserJson>('User');
const Follows = builder.objectRef<{ user: UserJson }>('Follows').implement({
  fields: (t) => ({
    communities: t.field({
      type: [Community],
      resolve: async ({ user }, _args, ctx) => (await followsOf(ctx.s, await ctx.users.load(user.name))).communities,
    }),
    users: t.field({
      type: [User],
      resolve: async ({ user }, _args, ctx) => (await followsOf(ctx.s, await ctx.users.load(user.name))).users,
    }),
  }),
});

User.implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    createdAt: t.exposeString('createdAt'),
    counts: t.field({
      type: FollowCounts,
      resolve: async (u, _args, ctx) => {
        const profile = await userProfile(ctx.s, await ctx.users.load(u.name));
        return { ...profile.follows, followers: profile.followers };
      },
    }),
    follows: t.field({ type: Follows, resolve: (user) => ({ user }) }),
    feed: t.field({
      type: PostConnection,
      description: 'Newest posts of the communities this user follows, across shard nodes',
      args: pageArgs,
      resolve: async (u, args, ctx) => postConnection(await feedOf(ctx.s, await ctx.users.load(u.name), postPage(args)), args.after),
    }),
  }),
});

/** A query's "no such thing": null rather than an error (a malformed ref or name is still an error). */
async function orNull<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

builder.queryType({
  fields: (t) => ({
    community: t.field({
      type: Community,
      nullable: true,
      description:
        'One tracked community (numeric id, name@host, or an rss:/mastodon: ref), with live workflow status; null if not tracked',
      args: { ref: t.arg.string({ required: true }) },
      resolve: (_root, { ref }, ctx) => orNull(findCommunity(ctx.s, ref).then((row) => withStatus(ctx.s, row))),
    }),
    communities: t.field({
      type: CommunityConnection,
      description: 'Tracked communities, most recently tracked first, with the status their last sync wrote',
      args: pageArgs,
      resolve: async (_root, args, ctx) => {
        const q = parseCommunitiesQuery({ limit: args.first == null ? undefined : String(args.first), before: args.after ?? undefined });
        const page = await listWithStatus(ctx.s, q);
        return connection(page.communities, (c) => encodeCommunityCursor(c.id), page.next !== null, args.after != null);
      },
    }),
    posts: t.field({
      type: PostConnection,
      description: 'Newest posts across every community and shard node',
      args: pageArgs,
      resolve: async (_root, args, ctx) => {
        const page = postPage(args);
        return postConnection(await newest(ctx.s, page.limit, page.before), args.after);
      },
    }),
    user: t.field({
      type: User,
      nullable: true,
      description: 'A user (null if there is none by that name)',
      args: { name: t.arg.string({ required: true }) },
      resolve: (_root, { name }, ctx) =>
        orNull(ctx.users.load(name).then((row) => ({ name: row.name, createdAt: row.created_at.toISOString() }))),
    }),
  }),
});

// --- Mutations: the REST API's writes, behind the same API token -----------------------------------

const REFRESH_SECONDS_HELP = 'a fixed interval, 1..86400 (sets the policy to fixed unless refreshPolicy says otherwise)';

const TrackInput = builder.inputType('TrackInput', {
  description: 'What to track: url, or community ("name@host"), or instance + name; optionally how often',
  fields: (t) => ({
    url: t.string({ description: 'a Lemmy community URL, an RSS/Atom/JSON feed, or a Mastodon hashtag or account URL' }),
    community: t.string({ description: 'name@host' }),
    instance: t.string({ description: 'https://host' }),
    name: t.string(),
    refreshSeconds: t.int({ description: REFRESH_SECONDS_HELP }),
    refreshPolicy: t.field({ type: RefreshPolicyEnum }),
    minRefreshSeconds: t.int(),
    maxRefreshSeconds: t.int(),
  }),
});

const RefreshPolicyInput = builder.inputType('RefreshPolicyInput', {
  fields: (t) => ({
    refreshSeconds: t.int({ description: REFRESH_SECONDS_HELP }),
    refreshPolicy: t.field({ type: RefreshPolicyEnum }),
    minRefreshSeconds: t.int(),
    maxRefreshSeconds: t.int(),
  }),
});

/** The fields a client set (GraphQL gives null for those it left out), as a JSON body would carry them. */
const given = (input: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(input).filter(([, v]) => v !== null && v !== undefined));

const TrackPayload = builder.objectRef<{ community: CommunityJson; created: boolean }>('TrackPayload').implement({
  fields: (t) => ({
    community: t.field({ type: Community, resolve: (p) => p.community }),
    created: t.exposeBoolean('created', { description: 'false when it was tracked already' }),
  }),
});

const RefreshPayload = builder.objectRef<{ ref: string; refreshRequested: boolean }>('RefreshPayload').implement({
  fields: (t) => ({ ref: t.exposeString('ref'), refreshRequested: t.exposeBoolean('refreshRequested') }),
});

const RemovePayload = builder.objectRef<{ ref: string; removed: boolean }>('RemovePayload').implement({
  fields: (t) => ({ ref: t.exposeString('ref'), removed: t.exposeBoolean('removed') }),
});

builder.mutationType({
  fields: (t) => ({
    track: t.field({
      type: TrackPayload,
      description: 'Starts tracking (POST /api/communities); an already tracked one is answered with created: false',
      args: { input: t.arg({ type: TrackInput, required: true }) },
      resolve: async (_root, { input }, ctx) => {
        requireAdmin(ctx);
        const body = parseWith(addBodySchema, given(input), 'input');
        return addCommunity(ctx.s, toAddInput(body, ctx.s.sources, ctx.s.config));
      },
    }),
    refresh: t.field({
      type: RefreshPayload,
      description: 'Syncs now (POST /api/communities/:ref/refresh)',
      args: { ref: t.arg.string({ required: true }) },
      resolve: async (_root, { ref }, ctx) => {
        requireAdmin(ctx);
        const row = await findCommunity(ctx.s, ref);
        await requestRefresh(ctx.s, row);
        return { ref: row.ref, refreshRequested: true };
      },
    }),
    setRefreshInterval: t.field({
      type: Community,
      description: 'A fixed interval in seconds, 1..86400 (PATCH /api/communities/:ref {"refreshSeconds"})',
      args: { ref: t.arg.string({ required: true }), seconds: t.arg.int({ required: true }) },
      resolve: async (_root, { ref, seconds }, ctx) => {
        requireAdmin(ctx);
        const fields = parseWith(patchBodySchema, { refreshSeconds: seconds }, 'seconds');
        return withStatus(ctx.s, await changeRefresh(ctx.s, await findCommunity(ctx.s, ref), fields));
      },
    }),
    setRefreshPolicy: t.field({
      type: Community,
      description: 'Fixed or adaptive, with bounds (PATCH /api/communities/:ref)',
      args: { ref: t.arg.string({ required: true }), input: t.arg({ type: RefreshPolicyInput, required: true }) },
      resolve: async (_root, { ref, input }, ctx) => {
        requireAdmin(ctx);
        const fields = parseWith(patchBodySchema, given(input), 'input');
        return withStatus(ctx.s, await changeRefresh(ctx.s, await findCommunity(ctx.s, ref), fields));
      },
    }),
    remove: t.field({
      type: RemovePayload,
      description: 'Stops tracking and deletes the posts (DELETE /api/communities/:ref)',
      args: { ref: t.arg.string({ required: true }) },
      resolve: async (_root, { ref }, ctx) => {
        requireAdmin(ctx);
        const row = await findCommunity(ctx.s, ref);
        await stopTracking(ctx.s, row);
        return { ref: row.ref, removed: true };
      },
    }),
  }),
});

export const schema: GraphQLSchema = builder.toSchema();
