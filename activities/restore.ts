// restoreWorkflows: makes sure every community in the catalog has its trackCommunity workflow
// running (the restoreTracking workflow runs it), for when Temporal's state was lost or the system
// moved to another Temporal cluster. It walks the catalog soonest due first, a page at a time, so
// that the runs it resumes are started before their next sync is due, and heartbeats how far it
// got, so a retry resumes there. Idempotent: a running workflow is left alone. A community whose
// last sync succeeded resumes its schedule (the next sync the catalog recorded); any other syncs
// at once, like a new one, and so does a resumed one already due. Two gates keep the starts at the
// workers' pace: at most `window` of the ones it started may be waiting for such a first sync, and
// at most `backlog` workflow tasks may wait in the task queues, as more would only queue first
// workflow tasks in Temporal (bench/RESULTS.md, "Fleet", run 1, and "Restore of a fleet in step").
// The starts are eager (the first task comes back with the start, to this worker) when the worker
// has a free slot.
import { Context } from '@temporalio/activity';
import {
  catalogNow,
  communitiesByDueAfter,
  FIRST_DUE_ORDER_KEY,
  unattemptedSince,
  type CommunityRow,
  type DueOrderKey,
} from '../src/db/communities.js';
import type { Sql } from '../src/db/pool.js';

export interface RestoreInput {
  /** Communities per catalog page (default 100). */
  pageSize?: number;
  /** Starts in flight at once (default 20). */
  concurrency?: number;
  /** Workflows it started that may be waiting for their first sync (default 400); resumed ones not yet due do not count. */
  window?: number;
  /**
   * Workflow tasks that may wait in the task queues before it starts more (default 200): a resumed
   * run costs one workflow task and nothing in the catalog, so this is what keeps the starts at the
   * pace the workers take them, instead of a backlog that makes every sync late.
   */
  backlog?: number;
}

export interface RestoreProgress {
  /** The last catalog row handled: its id and its next sync (DueOrderKey). */
  afterId: number;
  afterDue: string;
  /** Workflows it started (none was running). */
  restored: number;
  /** Of those, how many took up the schedule the catalog recorded (their last sync had succeeded). */
  resumed: number;
  /** Workflows it found running and left alone. */
  running: number;
  /** The catalog's time when the restore began: a sync attempt since then is a restored run's. */
  since: string;
}

/** What starting one row's workflow did (src/tracking.ts's restoreWorkflow; declared here to keep activities/ out of src/'s imports). */
export type RestoreOutcome = { started: false } | { started: true; resumed: boolean; syncsNow: boolean };

/** A window or backlog that has not shrunk for this long (runs that cannot sync yet, no worker on a queue) no longer holds the restore back. */
const STALLED_WINDOW_MS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface RestoreDeps {
  catalog: Sql;
  restoreWorkflow(row: CommunityRow): Promise<RestoreOutcome>;
  /** Workflow tasks waiting in the workers' task queues (Temporal's approximate count). */
  workflowTaskBacklog(): Promise<number>;
}

export function createRestoreActivity(deps: RestoreDeps) {
  return async function restoreWorkflows(input: RestoreInput = {}): Promise<RestoreProgress> {
    const ctx = Context.current();
    const pageSize = input.pageSize ?? 100;
    const concurrency = input.concurrency ?? 20;
    const window = Math.max(input.window ?? 400, pageSize);
    const maxBacklog = Math.max(input.backlog ?? 200, 0);
    const progress: RestoreProgress = (ctx.info.heartbeatDetails as RestoreProgress | undefined) ?? {
      afterId: FIRST_DUE_ORDER_KEY.id,
      afterDue: FIRST_DUE_ORDER_KEY.due,
      restored: 0,
      resumed: 0,
      running: 0,
      since: (await catalogNow(deps.catalog)).toISOString(),
    };
    if (progress.afterDue === undefined) {
      // A heartbeat of a worker that walked by id: walk again (a running workflow is left alone).
      Object.assign(progress, { afterId: FIRST_DUE_ORDER_KEY.id, afterDue: FIRST_DUE_ORDER_KEY.due, resumed: 0 });
    }
    const since = new Date(progress.since);
    // Started by this attempt and not yet past their first sync attempt.
    let waiting: number[] = [];
    for (;;) {
      ctx.heartbeat(progress);
      const after: DueOrderKey = { due: progress.afterDue, id: progress.afterId };
      const rows = await communitiesByDueAfter(deps.catalog, after, since, pageSize);
      if (rows.length === 0) return progress;
      let least = Number.POSITIVE_INFINITY;
      let movedAt = Date.now();
      for (;;) {
        waiting = await unattemptedSince(deps.catalog, waiting, since);
        // Temporal is asked only once the window has room: the backlog is the second gate.
        const windowHasRoom = waiting.length <= window - rows.length;
        const backlog = windowHasRoom ? await deps.workflowTaskBacklog() : 0;
        if (windowHasRoom && backlog <= maxBacklog) break;
        const behind = waiting.length + backlog;
        if (behind < least) [least, movedAt] = [behind, Date.now()];
        else if (Date.now() - movedAt > STALLED_WINDOW_MS) break;
        ctx.heartbeat(progress);
        await Promise.race([sleep(500), ctx.cancelled]);
      }
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(concurrency, rows.length) }, async () => {
          while (next < rows.length) {
            const row = rows[next++];
            const outcome = await deps.restoreWorkflow(row);
            if (!outcome.started) {
              progress.running++;
              continue;
            }
            progress.restored++;
            if (outcome.resumed) progress.resumed++;
            if (outcome.syncsNow) waiting.push(row.id);
          }
        }),
      );
      const last = rows[rows.length - 1];
      [progress.afterId, progress.afterDue] = [last.id, last.due_key];
    }
  };
}
