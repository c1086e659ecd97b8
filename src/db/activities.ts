// Catalog queries about activities: what a user did ("user:alice follow community:x@host"),
// newest first, keyset-paged by id.
import type { TransactionSql } from 'postgres';
import type { Sql } from './pool.js';

export interface NewActivity {
  actorId: number;
  verb: string;
  /** A ref with its kind: "community:name@host", "user:bob". */
  object: string;
  target?: string | null;
}

export interface ActivityRow {
  id: number;
  /** The actor's user name. */
  actor: string;
  verb: string;
  object: string;
  target: string | null;
  published: Date;
}

export interface ActivityPage {
  rows: ActivityRow[];
  /** The last id shown when there are more (the next page's `beforeId`). */
  nextBeforeId: number | null;
}

/** Records an activity, in the transaction of the change it tells of. */
export async function insertActivity(sql: TransactionSql, a: NewActivity): Promise<void> {
  await sql`insert into activities (actor_id, verb, object, target) values (${a.actorId}, ${a.verb}, ${a.object}, ${a.target ?? null})`;
}

function pageOf(rows: ActivityRow[], limit: number): ActivityPage {
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  return { rows: page, nextBeforeId: more ? page[page.length - 1].id : null };
}

/** A user's own activities, newest first (the activities_actor index). */
export async function activitiesOf(sql: Sql, userId: number, limit: number, beforeId?: number): Promise<ActivityPage> {
  const rows = await sql<ActivityRow[]>`
    select a.id, u.name as actor, a.verb, a.object, a.target, a.published
    from activities a join users u on u.id = a.actor_id
    where a.actor_id = ${userId} ${beforeId !== undefined ? sql`and a.id < ${beforeId}` : sql``}
    order by a.id desc
    limit ${limit + 1}`;
  return pageOf(rows, limit);
}

/** Activities of the users `userId` follows, newest first. */
export async function friendsActivities(sql: Sql, userId: number, limit: number, beforeId?: number): Promise<ActivityPage> {
  const rows = await sql<ActivityRow[]>`
    select a.id, u.name as actor, a.verb, a.object, a.target, a.published
    from activities a join users u on u.id = a.actor_id
    where a.actor_id in (select followed_id from user_follows where user_id = ${userId})
      ${beforeId !== undefined ? sql`and a.id < ${beforeId}` : sql``}
    order by a.id desc
    limit ${limit + 1}`;
  return pageOf(rows, limit);
}
