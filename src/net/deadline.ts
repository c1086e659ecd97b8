// A deadline carried by an AbortSignal: the time by which its caller must be done (an activity's
// own end), for the code deep down that would otherwise commit to a wait it cannot finish. The
// per-instance budget reads it so that a request never reserves a slot its sync would be aborted
// before reaching: an unused reservation would hold the instance's rate down for every worker.
const deadlines = new WeakMap<AbortSignal, number>();

/** Marks `signal` (which aborts by then) with its deadline, epoch ms; returns it. */
export function withDeadline(signal: AbortSignal, atMs: number): AbortSignal {
  deadlines.set(signal, atMs);
  return signal;
}

/** How long the holder of `signal` may still wait (ms), or undefined when it has no deadline. */
export function timeLeft(signal: AbortSignal | undefined): number | undefined {
  const at = signal && deadlines.get(signal);
  return at === undefined ? undefined : Math.max(0, at - Date.now());
}
