// What every GraphQL resolver gets: the services the REST API uses, the request's Authorization
// header, and per-request DataLoaders (made fresh for each request, so nothing is cached across
// requests): the first page of posts of many communities in one statement per shard node, and
// users by name.
import DataLoader from 'dataloader';
import { newestPostsOfCommunities } from '../../src/db/posts.js';
import { ShardUnavailableError } from '../../src/db/sharding/router.js';
import type { UserRow } from '../../src/db/users.js';
import { tokenMatches } from '../auth.js';
import { ApiError } from '../errors.js';
import { presentPost } from '../presenters.js';
import type { PostsPage, Services } from '../service.js';
import { requireUser } from '../users.js';

/** What a community's posts are loaded by: its id, logical shard and ref (a CommunityJson has them). */
export interface CommunityKey {
  id: number;
  shard: number;
  ref: string;
}

export interface GraphQLContext {
  s: Services;
  authorization: string | undefined;
  /** First pages of `first` posts, batched across every community of the request that asks for the same `first`. */
  firstPosts(first: number): DataLoader<CommunityKey, PostsPage, number>;
  /** Users by name: 400 for a malformed name, 404 for an unknown one (requireUser), once per request. */
  users: DataLoader<string, UserRow>;
}

export function createContext(s: Services, authorization: string | undefined): GraphQLContext {
  const byFirst = new Map<number, DataLoader<CommunityKey, PostsPage, number>>();
  return {
    s,
    authorization,
    firstPosts(first) {
      let loader = byFirst.get(first);
      if (!loader) {
        loader = new DataLoader((keys) => firstPostPages(s, keys, first), { cacheKeyFn: (k) => k.id });
        byFirst.set(first, loader);
      }
      return loader;
    },
    users: new DataLoader((names) => Promise.all(names.map((name) => requireUser(s, name).catch((err: Error) => err)))),
  };
}

/** The REST API's first page of posts (postsOf without a cursor) for many communities at once. */
async function firstPostPages(s: Services, keys: readonly CommunityKey[], first: number): Promise<(PostsPage | Error)[]> {
  const { pages, unavailable } = await newestPostsOfCommunities(s.router, keys, first);
  return keys.map((k) => {
    const node = unavailable.get(k.id);
    if (node !== undefined) return new ShardUnavailableError(node, new Error('no answer'));
    const page = pages.get(k.id) ?? { posts: [], next: null };
    return { posts: page.posts.map((p) => presentPost(p, k.ref)), next: page.next };
  });
}

/** 401 for a mutation without the API token (when one is configured), with the bearer challenge. */
export class UnauthorizedMutation extends ApiError {
  constructor(readonly challenge: string) {
    super(401, 'unauthorized', 'This mutation needs the API token: Authorization: Bearer <API_TOKEN>');
  }
}

/** Mutations take the same token as the REST API's writes: `Authorization: Bearer <API_TOKEN>`, when one is set. */
export function requireAdmin(ctx: GraphQLContext): void {
  const token = ctx.s.config.API_TOKEN;
  if (!token) return;
  if (ctx.authorization === undefined) throw new UnauthorizedMutation('Bearer');
  const m = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(ctx.authorization);
  if (!m) throw new UnauthorizedMutation('Bearer error="invalid_request"');
  if (!tokenMatches(token, m[1])) throw new UnauthorizedMutation('Bearer error="invalid_token"');
}
