// Every workflow the worker runs; bundled once at worker start.
export { trackCommunity } from './trackCommunity.js';
