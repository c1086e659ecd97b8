// The failed-login limiter behind POST /login (api/login-limiter.ts), on a fake clock.
import { describe, expect, it } from 'vitest';
import { LOGIN_MAX_FAILURES, LOGIN_WINDOW_MS, LoginLimiter } from '../api/login-limiter.js';

describe('LoginLimiter', () => {
  it('allows 10 failures per minute per client, then asks to wait until the oldest leaves the window', () => {
    let now = 1_000_000;
    const limiter = new LoginLimiter(LOGIN_MAX_FAILURES, LOGIN_WINDOW_MS, () => now);
    expect(LOGIN_MAX_FAILURES).toBe(10);
    expect(LOGIN_WINDOW_MS).toBe(60_000);
    for (let i = 0; i < 10; i++) {
      expect(limiter.retryAfter('a')).toBe(0);
      limiter.recordFailure('a');
      now += 1000; // one failure a second
    }
    // the first failure was at t=0, now is t=10 s: wait 50 s
    expect(limiter.retryAfter('a')).toBe(50);
    expect(limiter.retryAfter('b')).toBe(0);
    now += 49_500;
    expect(limiter.retryAfter('a')).toBe(1);
    now += 600; // the first failure has left the window: one more try
    expect(limiter.retryAfter('a')).toBe(0);
    limiter.recordFailure('a');
    expect(limiter.retryAfter('a')).toBeGreaterThan(0);
    now += LOGIN_WINDOW_MS;
    expect(limiter.retryAfter('a')).toBe(0);
  });
});
