// Users, their follows, feeds and activities: what the REST API (/api/users) and the website (/u/:name)
// share, so they behave the same. Everything here throws ApiErrors (400 bad input, 401/403, 404).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { tokenMatches } from './auth.js';
import { ApiError, notFound } from './errors.js';
import { catalogStatus, presentCommunity, presentPost, type CommunityJson, type PostJson } from './presenters.js';
import { findCommunity, type Services } from './service.js';
import { invalid, parsePageQuery, parseWith, type PageQuery } from './validation.js';
import { activitiesOf, friendsActivities, type ActivityPage, type ActivityRow } from '../src/db/activities.js';
import { userFeed } from '../src/db/feeds.js';
import {
  followCommunity,
  followedCommunities,
  followedCommunityIds,
  followedUsers,
  followUser,
  unfollowCommunity,
  unfollowUser,
  followsCommunity,
} from '../src/db/follows.js';
import { followCounts, insertUser, userByKeyHash, userByName, type FollowCounts, type UserRow } from '../src/db/users.js';

const NAME_RULE = 'must be 1 to 64 characters of a-z, 0-9 and _';
export const userNameSchema = z.string({ message: NAME_RULE }).regex(/^[a-z0-9_]{1,64}$/, NAME_RULE);
export const createUserBodySchema = z.strictObject({ name: userNameSchema });

export interface UserJson {
  name: string;
  createdAt: string;
}

export interface ProfileJson extends UserJson {
  follows: { communities: number; users: number };
  followers: number;
}

export interface ActivityJson {
  id: number;
  /** "user:alice" */
  actor: string;
  verb: string;
  /** "community:technology@lemmy.world", "user:bob" */
  object: string;
  target: string | null;
  published: string;
}

export interface ActivitiesPage {
  activities: ActivityJson[];
  next: string | null;
}

export interface FeedPage {
  posts: PostJson[];
  next: string | null;
  partial: boolean;
  missingNodes: string[];
}

export interface FollowsJson {
  communities: CommunityJson[];
  users: UserJson[];
}

export const presentUser = (row: UserRow): UserJson => ({ name: row.name, createdAt: row.created_at.toISOString() });

export const presentProfile = (row: UserRow, counts: FollowCounts): ProfileJson => ({
  ...presentUser(row),
  follows: { communities: counts.communities, users: counts.users },
  followers: counts.followers,
});

export const presentActivity = (row: ActivityRow): ActivityJson => ({
  id: row.id,
  actor: `user:${row.actor}`,
  verb: row.verb,
  object: row.object,
  target: row.target,
  published: row.published.toISOString(),
});

/** A `:name` from a path: a user name, else 400 invalid_input. */
export function parseUserName(raw: string, field = 'name'): string {
  const r = userNameSchema.safeParse(raw);
  if (!r.success) throw invalid(field, NAME_RULE);
  return r.data;
}

/** A new API key: 32 random bytes, base64url, prefixed so that it is recognisable in a leak. */
export function newApiKey(): string {
  return `lf_${randomBytes(32).toString('base64url')}`;
}

export function apiKeyHash(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Whether `key` is the one whose hash is stored, compared in constant time. */
function keyMatches(storedHash: string, key: string): boolean {
  const stored = Buffer.from(storedHash, 'hex');
  const given = Buffer.from(apiKeyHash(key), 'hex');
  return stored.length === given.length && timingSafeEqual(stored, given);
}

/** 401 with the challenge to send (WWW-Authenticate). */
export class UnauthorizedError extends ApiError {
  constructor(
    message: string,
    readonly challenge: string,
  ) {
    super(401, 'unauthorized', message);
  }
}

/**
 * A write to `name`'s follows needs `Authorization: Bearer <that user's key>` or the admin
 * API_TOKEN: none or an unknown key is a 401, another user's key a 403. Resolves when allowed.
 */
export async function authorizeUserWrite(s: Services, name: string, authorization: string | undefined): Promise<void> {
  const message = `This request needs ${name}'s API key (or the API token): Authorization: Bearer <key>`;
  if (authorization === undefined) throw new UnauthorizedError(message, 'Bearer');
  const m = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(authorization);
  if (!m) throw new UnauthorizedError(message, 'Bearer error="invalid_request"');
  const key = m[1];
  if (s.config.API_TOKEN && tokenMatches(s.config.API_TOKEN, key)) return;
  const user = await userByName(s.catalog, name);
  if (user && keyMatches(user.api_key_hash, key)) return;
  if (await userByKeyHash(s.catalog, apiKeyHash(key))) {
    throw new ApiError(403, 'forbidden', `This key belongs to another user; only ${name} (or the API token) may change ${name}'s follows`);
  }
  throw new UnauthorizedError(message, 'Bearer error="invalid_token"');
}

/** The website's signed-in user: the cookie holds `name:key`; undefined unless the key is that user's. */
export async function signedInUser(s: Services, cookie: string | undefined): Promise<UserRow | undefined> {
  const m = /^([a-z0-9_]{1,64}):([A-Za-z0-9._~+/-]{1,200}=*)$/.exec(cookie ?? '');
  if (!m) return undefined;
  const user = await userByName(s.catalog, m[1]);
  return user && keyMatches(user.api_key_hash, m[2]) ? user : undefined;
}

/** Checks a key typed into the website's sign-in form: the user, or 401. */
export async function userWithKey(s: Services, rawName: string, key: string | undefined): Promise<UserRow> {
  const user = await requireUser(s, rawName);
  if (!key || !keyMatches(user.api_key_hash, key.trim())) throw new ApiError(401, 'unauthorized', `That is not ${user.name}'s API key.`);
  return user;
}

/** Whether the user follows this community (for the website's follow button). */
export async function isFollowing(s: Services, user: UserRow, community: { id: number }): Promise<boolean> {
  return followsCommunity(s.catalog, user.id, community.id);
}

/** Creates a user; the key is in the answer only (just its hash is kept). */
export async function createUser(s: Services, body: unknown): Promise<{ user: UserJson; apiKey: string }> {
  const { name } = parseWith(createUserBodySchema, body);
  const apiKey = newApiKey();
  const row = await insertUser(s.catalog, name, apiKeyHash(apiKey));
  if (!row) throw new ApiError(409, 'user_exists', `The user name "${name}" is taken`);
  return { user: presentUser(row), apiKey };
}

/** The user of a `:name`: 400 for a malformed name, 404 for an unknown one. */
export async function requireUser(s: Services, rawName: string, field = 'name'): Promise<UserRow> {
  const row = await userByName(s.catalog, parseUserName(rawName, field));
  if (!row) throw notFound('user');
  return row;
}

export async function userProfile(s: Services, user: UserRow): Promise<ProfileJson> {
  return presentProfile(user, await followCounts(s.catalog, user.id));
}

/** A community removed between the lookup and the write: its follow row cannot refer to it. */
const isForeignKeyViolation = (err: unknown) => (err as { code?: string })?.code === '23503';

/** Follows a tracked community (404 if it is not tracked); following twice changes nothing. */
export async function startFollowingCommunity(s: Services, userName: string, ref: string): Promise<void> {
  const user = await requireUser(s, userName);
  const community = await findCommunity(s, ref);
  try {
    await followCommunity(s.catalog, user.id, community);
  } catch (err) {
    throw isForeignKeyViolation(err) ? notFound() : err;
  }
}

/** Unfollows a tracked community (404 if it is not tracked); unfollowing twice changes nothing. */
export async function stopFollowingCommunity(s: Services, userName: string, ref: string): Promise<void> {
  const user = await requireUser(s, userName);
  const community = await findCommunity(s, ref);
  await unfollowCommunity(s.catalog, user.id, community);
}

async function userPair(s: Services, userName: string, otherName: string): Promise<[UserRow, UserRow]> {
  const user = await requireUser(s, userName);
  const other = await requireUser(s, otherName, 'other');
  if (user.id === other.id) throw new ApiError(400, 'self_follow', 'A user cannot follow themselves');
  return [user, other];
}

export async function startFollowingUser(s: Services, userName: string, otherName: string): Promise<void> {
  const [user, other] = await userPair(s, userName, otherName);
  try {
    await followUser(s.catalog, user.id, other);
  } catch (err) {
    throw isForeignKeyViolation(err) ? notFound('user') : err;
  }
}

export async function stopFollowingUser(s: Services, userName: string, otherName: string): Promise<void> {
  const [user, other] = await userPair(s, userName, otherName);
  await unfollowUser(s.catalog, user.id, other);
}

/** Whom a user follows: communities as the community list shows them, and users. */
export async function followsOf(s: Services, user: UserRow): Promise<FollowsJson> {
  const [communities, users] = await Promise.all([followedCommunities(s.catalog, user.id), followedUsers(s.catalog, user.id)]);
  return { communities: communities.map((row) => presentCommunity(row, catalogStatus(row))), users: users.map(presentUser) };
}

/** The newest posts of the communities a user follows, across the shard nodes. */
export async function feedOf(s: Services, user: UserRow, page: PageQuery): Promise<FeedPage> {
  const communities = await followedCommunityIds(s.catalog, user.id);
  const refs = new Map(communities.map((c) => [c.id, c.ref]));
  const result = await userFeed(s.router, communities, page.limit, page.before);
  return {
    posts: result.posts.map((p) => presentPost(p, refs.get(p.community_id) ?? null)),
    next: result.next,
    partial: result.partial,
    missingNodes: result.missingNodes,
  };
}

/** Activities are paged by id: the cursor is the last id shown, opaque to clients. */
export function encodeActivityCursor(id: number): string {
  return Buffer.from(`a${id}`).toString('base64url');
}

export interface ActivityQuery {
  limit: number;
  before?: number;
}

/** `limit` 1..100 (default 20) and a `before` cursor from an earlier page's `next`. */
export function parseActivityQuery(q: { limit?: string; before?: string }): ActivityQuery {
  const { limit } = parsePageQuery({ limit: q.limit });
  if (q.before === undefined || q.before === '') return { limit };
  const m = /^a(\d{1,15})$/.exec(Buffer.from(q.before, 'base64url').toString('latin1'));
  if (!m || encodeActivityCursor(Number(m[1])) !== q.before) {
    throw new ApiError(400, 'invalid_cursor', 'before must be a cursor returned as "next" by this API');
  }
  return { limit, before: Number(m[1]) };
}

const presentActivities = (page: ActivityPage): ActivitiesPage => ({
  activities: page.rows.map(presentActivity),
  next: page.nextBeforeId === null ? null : encodeActivityCursor(page.nextBeforeId),
});

/** A user's own activities, newest first. */
export async function activitiesPage(s: Services, user: UserRow, q: ActivityQuery): Promise<ActivitiesPage> {
  return presentActivities(await activitiesOf(s.catalog, user.id, q.limit, q.before));
}

/** Activities of the users a user follows, newest first. */
export async function friendsActivitiesPage(s: Services, user: UserRow, q: ActivityQuery): Promise<ActivitiesPage> {
  return presentActivities(await friendsActivities(s.catalog, user.id, q.limit, q.before));
}
