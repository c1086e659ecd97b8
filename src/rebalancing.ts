// Starting the rebalanceShards workflow from a client (the API, `npm run shards`): beside
// src/tracking.ts, so that nothing outside the worker needs the activities' module.
import type { Client } from '@temporalio/client';

export const REBALANCE_WORKFLOW_ID = 'rebalance-shards';

/** Starts the rebalanceShards workflow, or joins the one already running. */
export async function startRebalance(client: Client, taskQueue: string) {
  return client.workflow.start('rebalanceShards', {
    workflowId: REBALANCE_WORKFLOW_ID,
    taskQueue,
    args: [{}],
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: 'rebalance logical shards across post-shard nodes',
  });
}
