// Starting, signalling and stopping the trackCommunity workflows, together with the catalog row
// and posts they own. The API, the website and the tests all go through these functions.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Config } from './config.js';
import { deleteCommunity, deleteCommunityRow, insertCommunity, setRefreshSeconds, type CommunityRow } from './db/communities.js';
import type { Sql } from './db/pool.js';
import { logicalShardOf, type ShardRouter } from './db/sharding/router.js';
import { communityRef } from './lemmy/refs.js';
import {
  refreshSignal,
  setRefreshIntervalSignal,
  statusQuery,
  trackCommunity,
  workflowIdOf,
  type CommunityStatus,
} from '../workflows/trackCommunity.js';

export interface TrackingDeps {
  config: Pick<Config, 'TEMPORAL_TASK_QUEUE' | 'REFRESH_SECONDS'>;
  catalog: Sql;
  router: ShardRouter;
  temporal: Client;
}

export interface NewTracking {
  instance: string;
  host: string;
  name: string;
  refreshSeconds?: number;
}

/**
 * `fresh`: the catalog row was just created, so a workflow still open under this id belongs to a
 * removed row (a delete whose cancellation is still under way): replace it, or the new row would
 * be "tracked" by a run that is about to end. Otherwise a second add joins the running workflow.
 */
function startWorkflow(deps: TrackingDeps, row: CommunityRow, fresh = false) {
  return deps.temporal.workflow.start(trackCommunity, {
    workflowId: workflowIdOf(row.ref),
    taskQueue: deps.config.TEMPORAL_TASK_QUEUE,
    args: [{ ref: row.ref, instance: row.instance, name: row.name, refreshSeconds: row.refresh_seconds }],
    workflowIdConflictPolicy: fresh ? 'TERMINATE_EXISTING' : 'USE_EXISTING',
    staticSummary: `track ${row.ref}`,
  });
}

/**
 * Adds the community to the catalog (one row even under concurrent adds) and makes sure its
 * workflow runs. `created` is false when it was already tracked. If Temporal cannot start the
 * workflow, a row created by this call is removed again so a retry starts clean.
 */
export async function startTracking(deps: TrackingDeps, c: NewTracking): Promise<{ row: CommunityRow; created: boolean }> {
  const ref = communityRef(c.name, c.host);
  const { row, created } = await insertCommunity(deps.catalog, {
    ref,
    instance: c.instance,
    host: c.host,
    name: c.name,
    refreshSeconds: c.refreshSeconds ?? deps.config.REFRESH_SECONDS,
    shard: logicalShardOf(ref),
  });
  try {
    await startWorkflow(deps, row, created);
  } catch (err) {
    if (created) await deleteCommunityRow(deps.catalog, row.id).catch(() => {});
    throw err;
  }
  return { row, created };
}

/**
 * Stops tracking: cancels the workflow, then removes posts and row together. The row is locked
 * while its posts are deleted, so a sync still in flight (which checks the row under the same
 * lock before writing) cannot leave posts behind; if anything fails, the row stays and the
 * removal can simply be retried.
 */
export async function stopTracking(deps: TrackingDeps, row: CommunityRow): Promise<void> {
  try {
    await deps.temporal.workflow.getHandle(workflowIdOf(row.ref)).cancel();
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  await deleteCommunity(deps.router, row);
}

/** Signals `refresh`; restarts the workflow if it is not running (e.g. terminated by hand). */
export async function requestRefresh(deps: TrackingDeps, row: CommunityRow): Promise<void> {
  try {
    await deps.temporal.workflow.getHandle(workflowIdOf(row.ref)).signal(refreshSignal);
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
    await startWorkflow(deps, row); // a fresh run syncs at once
  }
}

export async function changeRefreshInterval(deps: TrackingDeps, row: CommunityRow, seconds: number): Promise<CommunityRow> {
  const updated = (await setRefreshSeconds(deps.catalog, row.id, seconds)) ?? row;
  try {
    await deps.temporal.workflow.getHandle(workflowIdOf(row.ref)).signal(setRefreshIntervalSignal, seconds);
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
    await startWorkflow(deps, updated);
  }
  return updated;
}

/** The workflow's live status, or undefined when Temporal does not answer within `timeoutMs`. */
export async function queryStatus(deps: Pick<TrackingDeps, 'temporal'>, ref: string, timeoutMs = 1500): Promise<CommunityStatus | undefined> {
  try {
    return await deps.temporal.withDeadline(Date.now() + timeoutMs, () =>
      deps.temporal.workflow.getHandle(workflowIdOf(ref)).query(statusQuery),
    );
  } catch {
    return undefined;
  }
}
