// The one catalogue of sync failure types, shared by the source adapters (which raise them), the
// sync activity (which reports them as ApplicationFailure types), the workflow (retry policy and
// status) and the catalog's status. Pure data with no imports: workflow code uses it too.

export const SYNC_FAILURE_TYPES = [
  // Permanent until someone changes something (the community exists again, the URL is fixed).
  'CommunityNotFound',
  'NotLemmyApi',
  'InstanceRequiresLogin',
  'PrivateAddress',
  'SourceGone',
  'UnsupportedSource',
  // Passing: retried by Temporal with backoff, honouring the source's Retry-After.
  'RateLimited',
  'ServerError',
  'NetworkError',
  'Timeout',
  'ResponseTooLarge',
  'InvalidResponse',
  'LemmyApiError',
  'BudgetExhausted',
  'ShardBusy',
  'ShardUnavailable',
  // Every source failed at once: our own connectivity, not the source's (not counted against it).
  'Offline',
] as const;

export type SyncFailureType = (typeof SYNC_FAILURE_TYPES)[number];

/** Not retried: the workflow records the error and waits for the next interval or a refresh. */
export const PERMANENT_FAILURE_TYPES: readonly SyncFailureType[] = [
  'CommunityNotFound',
  'NotLemmyApi',
  'InstanceRequiresLogin',
  'PrivateAddress',
  'SourceGone',
  'UnsupportedSource',
];

/** Shown as state `not_found` rather than `failing`. */
export const NOT_FOUND_FAILURE_TYPES: readonly SyncFailureType[] = ['CommunityNotFound', 'SourceGone'];

/** Failures of the network path, which may be ours rather than the source's. */
export const CONNECTIVITY_FAILURE_TYPES: readonly SyncFailureType[] = ['NetworkError', 'Timeout'];

export function isPermanentFailure(type: string | undefined | null): boolean {
  return (PERMANENT_FAILURE_TYPES as readonly string[]).includes(type ?? '');
}

export function isNotFoundFailure(type: string | undefined | null): boolean {
  return (NOT_FOUND_FAILURE_TYPES as readonly string[]).includes(type ?? '');
}

/** `CommunityNotFound` → `community_not_found`: the code shown in status and the API. */
export function failureCode(type: string): string {
  return type.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}
