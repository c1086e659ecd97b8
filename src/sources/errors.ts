// The one error a source adapter raises. Its `type` is the ApplicationFailure type the sync
// reports (see src/failures.ts); its disposition tells Temporal's retry policy what to do.
import { isPermanentFailure, type SyncFailureType } from '../failures.js';

/** retryable: try again with backoff; permanent: not until something changes; rate_limited: after `retryAfterMs`. */
export type ErrorDisposition = 'retryable' | 'permanent' | 'rate_limited';

export class SourceError extends Error {
  readonly retryable: boolean;
  readonly disposition: ErrorDisposition;
  constructor(
    readonly type: SyncFailureType,
    message: string,
    readonly opts: { status?: number; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = 'SourceError';
    this.retryable = !isPermanentFailure(type);
    this.disposition = type === 'RateLimited' ? 'rate_limited' : this.retryable ? 'retryable' : 'permanent';
  }
}
