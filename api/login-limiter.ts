// Rate limit of failed logins (POST /login): at most LOGIN_MAX_FAILURES wrong tokens per client IP
// in a sliding window of LOGIN_WINDOW_MS; then every login from that IP, right token or not, gets
// 429 with Retry-After until the oldest failure leaves the window. In memory, per API process (a
// restart or another replica starts afresh), bounded to MAX_CLIENTS addresses (the ones idle the
// longest are forgotten first).
export const LOGIN_MAX_FAILURES = 10;
export const LOGIN_WINDOW_MS = 60_000;
const MAX_CLIENTS = 10_000;

export class LoginLimiter {
  /** client → times of its failures in the window, oldest first (Map order: least recently failed first). */
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly maxFailures = LOGIN_MAX_FAILURES,
    private readonly windowMs = LOGIN_WINDOW_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until `client` may try again, or 0 when it may try now. */
  retryAfter(client: string): number {
    const times = this.recent(client);
    if (times.length < this.maxFailures) return 0;
    return Math.max(1, Math.ceil((times[times.length - this.maxFailures] + this.windowMs - this.now()) / 1000));
  }

  recordFailure(client: string): void {
    const times = this.recent(client);
    times.push(this.now());
    this.failures.delete(client);
    this.failures.set(client, times.slice(-this.maxFailures));
    while (this.failures.size > MAX_CLIENTS) this.failures.delete(this.failures.keys().next().value!);
  }

  private recent(client: string): number[] {
    const cutoff = this.now() - this.windowMs;
    const times = (this.failures.get(client) ?? []).filter((t) => t > cutoff);
    if (times.length === 0) this.failures.delete(client);
    return times;
  }
}
