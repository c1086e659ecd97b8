// Reading a workflow's history in tests: what a user would notice as "stuck" shows up there as
// failed workflow tasks, whatever the query answers.
import type { WorkflowHandle } from '@temporalio/client';

// UNHANDLED_COMMAND is not a failure of our code: the server refuses a task that completes or
// continues as new while a signal or update it has not seen yet arrived, so that none is lost,
// and the worker at once runs a new task with it. Every other cause is a defect.
const UNHANDLED_COMMAND = 1;

/** Failed workflow tasks of every run of the workflow (across continue-as-new), with their causes. */
export async function failedWorkflowTasks(handle: WorkflowHandle): Promise<string[]> {
  const failures: string[] = [];
  let runId: string | undefined = (await handle.describe()).runId;
  const client = handle.client;
  const seen = new Set<string>();
  // Walk back through the chain of runs (continue-as-new) via each first event's continuedExecutionRunId.
  while (runId && !seen.has(runId)) {
    seen.add(runId);
    const history = await client.getHandle(handle.workflowId, runId).fetchHistory();
    for (const e of history.events ?? []) {
      const attrs = e.workflowTaskFailedEventAttributes;
      if (attrs && Number(attrs.cause) !== UNHANDLED_COMMAND && String(attrs.cause) !== 'WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND')
        failures.push(`${attrs.cause ?? ''}: ${attrs.failure?.message ?? ''}`);
    }
    runId = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId ?? undefined;
  }
  return failures;
}

/** A recorded marker, as `fetchHistory()` gives its attributes. */
interface MarkerAttributes {
  markerName?: string | null;
  details?: Record<string, { payloads?: { data?: Uint8Array | null }[] | null }> | null;
  failure?: unknown;
}

/**
 * The sync that ran as a local activity (the workflow's quick attempt) which this marker records,
 * or undefined for any other marker. `failed`: it handed the sync over to the regular activity.
 */
export function quickSyncOf(m: MarkerAttributes | null | undefined): { failed: boolean } | undefined {
  return localActivityOf(m) === 'syncCommunity' ? { failed: !!m!.failure } : undefined;
}

/** The activity type of the local activity this marker records, or undefined for any other marker. */
export function localActivityOf(m: MarkerAttributes | null | undefined): string | undefined {
  const data = m?.markerName === 'core_local_activity' ? m.details?.data?.payloads?.[0]?.data : undefined;
  return data ? (JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string }).activity_type : undefined;
}

/**
 * Whether this history event ends a sync that succeeded: a regular attempt that completed (the
 * only regular activity trackCommunity runs), or a quick one that did not hand over.
 */
export function completesSync(e: {
  activityTaskCompletedEventAttributes?: unknown;
  markerRecordedEventAttributes?: MarkerAttributes | null;
}): boolean {
  return !!e.activityTaskCompletedEventAttributes || quickSyncOf(e.markerRecordedEventAttributes)?.failed === false;
}

/** A history event as `fetchHistory()` gives it, with the fields the pause check reads. */
interface PauseEvent {
  timerStartedEventAttributes?: { startToFireTimeout?: { seconds?: unknown } | null } | null;
  timerFiredEventAttributes?: unknown;
  workflowExecutionContinuedAsNewEventAttributes?: unknown;
}

/**
 * Whether the run is in its first pause before a rollover (trackCommunity's timer of under a
 * second; a wait is seconds long) and that timer has neither fired nor been followed by the rollover.
 */
export function inPauseBeforeRollover(events: readonly PauseEvent[]): boolean {
  const pauseAt = events.findIndex((e) => String(e.timerStartedEventAttributes?.startToFireTimeout?.seconds ?? 'none') === '0');
  return (
    pauseAt >= 0 && !events.slice(pauseAt).some((e) => e.timerFiredEventAttributes || e.workflowExecutionContinuedAsNewEventAttributes)
  );
}
