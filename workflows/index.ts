// Every workflow the worker runs; bundled once at worker start.
export { trackCommunity } from './trackCommunity.js';
export { moveShard } from './moveShard.js';
export { rebalanceShards } from './rebalanceShards.js';
export { restoreTracking } from './restoreTracking.js';
