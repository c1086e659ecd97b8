import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseShardUrls } from '../src/config.js';

describe('configuration', () => {
  it('has documented defaults when nothing is set', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      PORT: 3000,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TASK_QUEUE: 'lemmy-fetcher',
      REFRESH_SECONDS: 300,
      ALLOW_PRIVATE_INSTANCES: false,
      INSTANCE_REQUESTS_PER_SECOND: 1,
      TEMPORAL_UI_URL: 'http://localhost:8233',
    });
    expect(c.TEMPORAL_ADDRESS).toBeUndefined();
    expect(c.POST_SHARD_NODES).toBeUndefined();
    expect(c.LEMMY_USER_AGENT).toMatch(/^lemmy-fetcher\/\d+\.\d+\.\d+ \(\+https?:\/\//);
  });

  it('names every bad variable in one error', () => {
    let err: unknown;
    try {
      loadConfig({ PORT: 'abc', REFRESH_SECONDS: '0', ALLOW_PRIVATE_INSTANCES: 'maybe', TEMPORAL_ADDRESS: 'no port' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    for (const key of ['PORT', 'REFRESH_SECONDS', 'ALLOW_PRIVATE_INSTANCES', 'TEMPORAL_ADDRESS']) expect(msg).toContain(key);
  });

  it('requires catalog and shard URLs together, and parses named shard nodes', () => {
    expect(() => loadConfig({ CATALOG_DATABASE_URL: 'postgres://x@h/db' })).toThrow(/POST_SHARD_URLS/);
    expect(() => loadConfig({ POST_SHARD_URLS: 'postgres://x@h/db' })).toThrow(/CATALOG_DATABASE_URL/);
    expect(parseShardUrls('postgres://a/x, postgres://b/y')).toEqual([
      { name: 'shard-1', url: 'postgres://a/x' },
      { name: 'shard-2', url: 'postgres://b/y' },
    ]);
    expect(parseShardUrls('east=postgres://a/x,west=postgres://b/y').map((n) => n.name)).toEqual(['east', 'west']);
    expect(() => parseShardUrls('mysql://a/x')).toThrow(/postgres/);
    expect(() => parseShardUrls('a=postgres://a/x,a=postgres://b/y')).toThrow(/unique/);
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ PORT: '', TEMPORAL_ADDRESS: '' })).toMatchObject({ PORT: 3000, TEMPORAL_ADDRESS: undefined });
  });
});
