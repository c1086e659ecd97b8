// Waiting for a deadline that may move while we wait (the refresh interval can be changed by a
// signal or an update), or until something wakes us (a refresh). The idea of the updatable timer
// of temporalio/samples-typescript (timer-examples): wait on a condition with the time left as
// its timeout, and look again when the deadline is changed. Runs started since 'wait-by-timer'
// wait with waitForDeadlineByTimer: the same commands, without the condition.
//
// The rule that keeps a workflow from spinning: this either awaits (a timer and a condition that
// resolves only on a change, or a timer that only a change interrupts) or answers 'woken' /
// 'due', on which the caller does its work (a sync, which awaits an activity). A deadline that
// has already passed (an interval shortened below the time already waited, a run continued as
// new after its due time) is 'due' at once. 'moved' is only ever answered after awaiting, once per
// change.
//
// One step per call, rather than a loop inside, so that the caller decides between two waits
// (trackCommunity checks for continue-as-new there): the commands it emits stay exactly those of
// the workflow versions whose histories are still running (test/workflow-replay.test.ts).
import { CancellationScope, condition, isCancellation, sleep, type TimerOptions } from '@temporalio/workflow';

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

/**
 * The same wait with a timer in a cancellation scope of its own instead of `condition` with a
 * timeout: the same commands (the timer, and its cancellation when ended early), for half the
 * promises (the SDK records a stack for each), ~0.5 CPU-ms less per sync (bench/RESULTS.md).
 * Nothing polls `wake` and `moved` at the end of an activation, so whoever changes what they
 * answer must call the interrupt it is handed (`onWait`; undefined again once the wait is over).
 * The interrupt ends the wait only when `wake()` or `moved()` is true; a cancelled workflow's
 * cancellation still goes through.
 */
export async function waitForDeadlineByTimer(
  dueAt: number,
  wake: () => boolean,
  moved: () => boolean,
  onWait: (interrupt: (() => void) | undefined) => void,
  options: TimerOptions = {},
): Promise<WaitOutcome> {
  if (wake()) return 'woken';
  const remaining = dueAt - Date.now();
  if (!(remaining > 0)) return 'due';
  if (await sleepUnlessInterrupted(remaining, () => wake() || moved(), onWait, options)) return 'due';
  return wake() ? 'woken' : 'moved';
}

/**
 * A timer in a cancellation scope of its own that an interrupt can end early: true when it fired,
 * false when interrupted. The interrupt is handed to `onWait` (undefined again once the wait is
 * over) and ends the wait only when `shouldEnd()` is true at that moment; it is asked at most once
 * per wait after it answers true. A cancelled workflow's cancellation still goes through.
 */
export async function sleepUnlessInterrupted(
  ms: number,
  shouldEnd: () => boolean,
  onWait: (interrupt: (() => void) | undefined) => void,
  options: TimerOptions = {},
): Promise<boolean> {
  const scope = new CancellationScope();
  let interrupted = false;
  onWait(() => {
    if (interrupted || !shouldEnd()) return;
    interrupted = true;
    scope.cancel();
  });
  try {
    await scope.run(() => sleep(ms, options));
    return true;
  } catch (err) {
    if (!(interrupted && isCancellation(err))) throw err;
    return false;
  } finally {
    onWait(undefined);
  }
}
