// Waiting for a deadline that may move while we wait (the refresh interval can be changed by a
// signal or an update), or for a wake-up condition (a refresh). Like the samples' updatable
// timer: one small loop, and every way through it either returns or awaits, so a workflow can
// never spin on it (a deadline already passed returns at once, and the caller then does work).
import { condition, type TimerOptions } from '@temporalio/workflow';

export type WaitOutcome = 'woken' | 'due';

export async function waitForDeadline(dueAt: () => number, wake: () => boolean, options?: TimerOptions): Promise<WaitOutcome> {
  for (;;) {
    if (wake()) return 'woken';
    const due = dueAt();
    const remaining = due - Date.now();
    if (remaining <= 0) return 'due';
    // Wakes early when woken, or when the deadline moved (then we wait again for the new one).
    const early = await condition(() => wake() || dueAt() !== due, remaining, options ?? {});
    if (!early) return 'due';
  }
}
