// Starts the trackCommunity workflow of every community in the catalog that has none running:
// after Temporal's state was lost, or when the system moves to another Temporal cluster (the
// catalog keeps what is tracked; Temporal keeps only the runs). A community that had synced takes
// up its schedule from the catalog (src/tracking.ts, resumedStateOf). An operator starts it:
//   temporal workflow start --type restoreTracking --task-queue lemmy-fetcher --workflow-id restore-tracking
// One long activity walks the catalog and heartbeats its place (a retry resumes there); the
// workflow waits for it, so its history stays a handful of events whatever the catalog's size.
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { RestoreInput, RestoreProgress } from '../activities/restore.js';

export const RESTORE_WORKFLOW_ID = 'restore-tracking';

export async function restoreTracking(input: RestoreInput = {}): Promise<RestoreProgress> {
  const { restoreWorkflows } = proxyActivities<Activities>({
    // 50,000 communities take about 20 minutes on one small box when they had synced, half an hour
    // when new (bench/RESULTS.md, "Restore of a fleet in step", "Fleet").
    startToCloseTimeout: '12 hours',
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
    summary: "start every tracked community's workflow that is not running",
  });
  return restoreWorkflows(input ?? {});
}
