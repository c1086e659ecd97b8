import { spawnSync } from 'node:child_process';
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

  it('takes the dev server Go runtime settings Go understands, and names a bad one', () => {
    expect(loadConfig({ TEMPORAL_DEV_GOGC: 'off', TEMPORAL_DEV_GOMEMLIMIT: '2GiB' })).toMatchObject({
      TEMPORAL_DEV_GOGC: 'off',
      TEMPORAL_DEV_GOMEMLIMIT: '2GiB',
    });
    expect(loadConfig({})).toMatchObject({ TEMPORAL_DEV_GOGC: undefined, TEMPORAL_DEV_GOMEMLIMIT: undefined });
    expect(() => loadConfig({ TEMPORAL_DEV_GOGC: 'lots' })).toThrow(/TEMPORAL_DEV_GOGC/);
    expect(() => loadConfig({ TEMPORAL_DEV_GOMEMLIMIT: '2 GB' })).toThrow(/TEMPORAL_DEV_GOMEMLIMIT/);
    expect(loadConfig({ TEMPORAL_DEV_GOMAXPROCS: '2' }).TEMPORAL_DEV_GOMAXPROCS).toBe(2);
    expect(loadConfig({}).TEMPORAL_DEV_GOMAXPROCS).toBeUndefined();
    expect(() => loadConfig({ TEMPORAL_DEV_GOMAXPROCS: '0' })).toThrow(/TEMPORAL_DEV_GOMAXPROCS/);
  });

  it('refuses worker settings below what a worker runs with, by name', () => {
    expect(loadConfig({})).toMatchObject({
      WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: 40,
      WORKER_WORKFLOW_TASK_POLLS: 10,
      WORKER_ACTIVITY_TASK_POLLS: 10,
      WORKER_WORKFLOW_THREAD: 'own',
    });
    expect(loadConfig({ WORKER_WORKFLOW_THREAD: 'main' }).WORKER_WORKFLOW_THREAD).toBe('main');
    expect(() => loadConfig({ WORKER_WORKFLOW_THREAD: 'both' })).toThrow(/WORKER_WORKFLOW_THREAD/);
    // The SDK refuses fewer than 2 workflow task slots with a sticky cache, and a worker polls both
    // the sticky and the normal queue, so fewer than 2 workflow polls are not what it would do.
    expect(() => loadConfig({ WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '1' })).toThrow(/WORKER_MAX_CONCURRENT_WORKFLOW_TASKS/);
    expect(() => loadConfig({ WORKER_WORKFLOW_TASK_POLLS: '1' })).toThrow(/WORKER_WORKFLOW_TASK_POLLS/);
    expect(() => loadConfig({ WORKER_ACTIVITY_TASK_POLLS: '0' })).toThrow(/WORKER_ACTIVITY_TASK_POLLS/);
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ PORT: '', TEMPORAL_ADDRESS: '' })).toMatchObject({ PORT: 3000, TEMPORAL_ADDRESS: undefined });
  });
});

describe('configuration: exposure and request guards', () => {
  it('refuses a non-loopback HOST without API_TOKEN, naming both', () => {
    for (const HOST of ['0.0.0.0', '::', '192.168.1.5', 'example.com']) {
      let err: unknown;
      try {
        loadConfig({ HOST });
      } catch (e) {
        err = e;
      }
      expect(err, HOST).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/HOST/);
      expect((err as Error).message).toMatch(/API_TOKEN/);
    }
    expect(loadConfig({ HOST: '0.0.0.0', API_TOKEN: 'a-long-enough-token' }).HOST).toBe('0.0.0.0');
    for (const HOST of ['127.0.0.1', '127.0.0.2', 'localhost', '::1', '[::1]']) expect(loadConfig({ HOST }).HOST, HOST).toBe(HOST);
  });

  it('`npm run api` exits with code 2 and a clear message when bound to 0.0.0.0 without API_TOKEN', () => {
    const env = { ...process.env, HOST: '0.0.0.0', API_TOKEN: '', CATALOG_DATABASE_URL: '', POST_SHARD_URLS: '' };
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/api.ts'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/HOST=.*0\.0\.0\.0.*API_TOKEN/s);
  });

  it('accepts only API tokens a bearer header can carry (RFC 6750 token68)', () => {
    expect(loadConfig({ API_TOKEN: 'abc.DEF_123~+/-==' }).API_TOKEN).toBe('abc.DEF_123~+/-==');
    expect(() => loadConfig({ API_TOKEN: 'has a space' })).toThrow(/API_TOKEN/);
    expect(() => loadConfig({ API_TOKEN: 'quote"quote' })).toThrow(/API_TOKEN/);
  });

  it('parses ALLOWED_HOSTS and TRUSTED_PROXIES with documented defaults', () => {
    const c = loadConfig({});
    expect(c.ALLOWED_HOSTS).toEqual(['localhost', '127.0.0.1', '[::1]']);
    expect(c.TRUSTED_PROXIES).toEqual(['127.0.0.0/8', '::1/128']);
    expect(loadConfig({ ALLOWED_HOSTS: 'Example.COM, api:3000 ,::1' }).ALLOWED_HOSTS).toEqual(['example.com', 'api', '[::1]']);
    expect(loadConfig({ ALLOWED_HOSTS: '*' }).ALLOWED_HOSTS).toEqual(['*']);
    expect(loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8, 192.168.1.1, fd00::/8' }).TRUSTED_PROXIES).toEqual([
      '10.0.0.0/8',
      '192.168.1.1/32',
      'fd00::/8',
    ]);
    expect(loadConfig({ TRUSTED_PROXIES: 'none' }).TRUSTED_PROXIES).toEqual([]);
    expect(() => loadConfig({ TRUSTED_PROXIES: '10.0.0.0/99' })).toThrow(/TRUSTED_PROXIES/);
    expect(() => loadConfig({ TRUSTED_PROXIES: 'proxy.example' })).toThrow(/TRUSTED_PROXIES/);
    expect(() => loadConfig({ ALLOWED_HOSTS: 'a b' })).toThrow(/ALLOWED_HOSTS/);
  });
});
