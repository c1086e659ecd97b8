// Waiting for a deadline that may move while we wait (the refresh interval can be changed by a
// signal or an update), or until something wakes us (a refresh). The idea of the updatable timer
// of temporalio/samples-typescript (timer-examples): wait on a condition with the time left as
// its timeout, and look again when the deadline is changed.
//
// The rule that keeps a workflow from spinning: this either awaits (a timer and a condition that
// resolves only on a change) or answers 'woken' / 'due', on which the caller does its work (a
// sync, which awaits an activity). A deadline that has already passed (an interval shortened
// below the time already waited, a run continued as new after its due time) is 'due' at once.
// 'moved' is only ever answered after awaiting, once per change.
//
// One step per call, rather than a loop inside, so that the caller decides between two waits
// (trackCommunity checks for continue-as-new there): the commands it emits stay exactly those of
// the workflow versions whose histories are still running (test/workflow-replay.test.ts).
import { condition, type TimerOptions } from '@temporalio/workflow';

export type WaitOutcome = 'woken' | 'due' | 'moved';

/**
 * Waits until `wake()` is true ('woken'), the workflow clock reaches `dueAt` (epoch ms; 'due'),
 * or `moved()` is true ('moved': the deadline was changed; compute it again and call again).
 * A deadline already passed, or not a number, is 'due' without waiting. `dueAt` must be finite.
 */
export async function waitForDeadline(
  dueAt: number,
  wake: () => boolean,
  moved: () => boolean,
  options: TimerOptions = {},
): Promise<WaitOutcome> {
  if (wake()) return 'woken';
  const remaining = dueAt - Date.now();
  // `!(x > 0)` rather than `x <= 0`: NaN must not reach the timer either.
  if (!(remaining > 0)) return 'due';
  const early = await condition(() => wake() || moved(), remaining, options);
  if (!early) return 'due';
  return wake() ? 'woken' : 'moved';
}
