// No Docker engine runs here, so the compose file is checked for consistency instead.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_KEYS, loadConfig } from '../src/config.js';
import { DEV_SERVER_DYNAMIC_CONFIG } from '../src/temporal/devserver.js';

interface Service {
  image?: string;
  build?: string | { context: string };
  command?: string[] | string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  ports?: string[];
  volumes?: string[];
}
const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = compose.services;

/** What docker compose would substitute, with example values for required variables. */
function interpolate(value: string): string {
  return value.replace(/\$\{(\w+)(:?[?-])?([^}]*)\}/g, (_m, name: string, op: string | undefined, arg: string) => {
    if (name === 'POSTGRES_PASSWORD' || name === 'TEMPORAL_DB_PASSWORD') return 'example';
    if (name === 'API_TOKEN') return 'example-api-token';
    return op?.includes('-') ? arg : '';
  });
}

describe('docker-compose.yml', () => {
  it('has Temporal with Postgres persistence, its UI, a catalog and two shard nodes, worker and API', () => {
    for (const name of [
      'temporal-db',
      'temporal-schema',
      'temporal',
      'temporal-namespace',
      'temporal-ui',
      'catalog-db',
      'shard-1-db',
      'shard-2-db',
      'worker',
      'api',
    ]) {
      expect(services, name).toHaveProperty(name);
    }
    expect(services.temporal.environment?.DB).toBe('postgres12');
    expect(services.temporal.environment?.POSTGRES_SEEDS).toBe('temporal-db');
  });

  it('gives its Temporal server the dynamic config the embedded dev server runs with', () => {
    const path = services.temporal.environment?.DYNAMIC_CONFIG_FILE_PATH;
    const mount = (services.temporal.volumes ?? []).find((v) => v.split(':')[1] === path);
    expect(mount, `a volume mounted at ${path}`).toBeDefined();
    const file = mount!.split(':')[0];
    expect(existsSync(file), file).toBe(true);
    const values = parse(readFileSync(file, 'utf8')) as Record<string, { value: unknown }[]>;
    expect(Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v[0].value]))).toEqual(DEV_SERVER_DYNAMIC_CONFIG);
  });

  it('depends only on services that exist, and builds the app from the Dockerfile', () => {
    for (const [name, svc] of Object.entries(services)) {
      for (const dep of Object.keys(svc.depends_on ?? {})) expect(services, `${name} depends on ${dep}`).toHaveProperty(dep);
    }
    expect(existsSync('Dockerfile')).toBe(true);
    expect(services.worker.build).toBe('.');
    expect(services.api.build).toBe('.');
    const scripts = JSON.parse(readFileSync('package.json', 'utf8')).scripts as Record<string, string>;
    expect(services.worker.command).toEqual(['npm', 'run', 'worker']);
    expect(services.api.command).toEqual(['npm', 'run', 'api']);
    expect(scripts.worker).toBeDefined();
    expect(scripts.api).toBeDefined();
  });

  it('gives worker and API only variables the code reads, and a config that validates', () => {
    for (const role of ['worker', 'api']) {
      const env = services[role].environment ?? {};
      for (const key of Object.keys(env)) expect(CONFIG_KEYS, `${role}: ${key}`).toContain(key);
      const config = loadConfig(Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(String(v))])));
      expect(config.POST_SHARD_NODES?.map((n) => n.name)).toEqual(['shard-1', 'shard-2']);
      // Every database URL points at a service of this file, on the port it listens on.
      for (const url of [config.CATALOG_DATABASE_URL!, ...config.POST_SHARD_NODES!.map((n) => n.url)]) {
        const { hostname, port } = new URL(url);
        expect(services, url).toHaveProperty(hostname);
        expect(port).toBe('5432');
      }
      expect(services, config.TEMPORAL_ADDRESS).toHaveProperty(config.TEMPORAL_ADDRESS!.split(':')[0]);
    }
    expect(services.api.environment?.HOST).toBe('0.0.0.0');
  });

  it('publishes each host port once and keeps passwords out of the file', () => {
    const hostPorts = Object.values(services).flatMap((s) => (s.ports ?? []).map((p) => String(p).split(':').at(-2)));
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
    expect(hostPorts).toEqual(expect.arrayContaining(['3000', '7233', '8233']));
    const text = readFileSync('docker-compose.yml', 'utf8');
    expect(text).not.toMatch(/^\s*\w*(PASSWORD|PWD)\w*:\s*[^$\s]/m);
    for (const vol of Object.keys(compose.volumes)) expect(text).toContain(`${vol}:/var/lib/postgresql/data`);
  });

  it('publishes every port on 127.0.0.1 only', () => {
    const published = Object.entries(services).flatMap(([name, s]) => (s.ports ?? []).map((p) => [name, String(p)] as const));
    expect(published.length).toBeGreaterThanOrEqual(3);
    for (const [name, p] of published) expect(p, `${name} publishes ${p}`).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
    expect(services.temporal.ports).toEqual(['127.0.0.1:7233:7233']);
    expect(services['temporal-ui'].ports).toEqual(['127.0.0.1:8233:8080']);
  });

  it('requires API_TOKEN for the API (bound to 0.0.0.0 in its container), and the app refuses to start without one', () => {
    const raw = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as { services: Record<string, Service> };
    expect(raw.services.api.environment?.API_TOKEN).toMatch(/^\$\{API_TOKEN:\?[^}]+\}$/);
    const env = Object.fromEntries(Object.entries(services.api.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]));
    expect(() => loadConfig({ ...env, API_TOKEN: '' })).toThrow(/API_TOKEN/);
    expect(loadConfig(env).API_TOKEN).toBe('example-api-token');
    // Reached through the published port as localhost:3000 or 127.0.0.1:3000.
    const allowed = loadConfig(env).ALLOWED_HOSTS;
    expect(allowed).toEqual(expect.arrayContaining(['localhost', '127.0.0.1']));
  });

  it('keeps secrets and local data out of the image build context', () => {
    const ignored = readFileSync('.dockerignore', 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const entry of ['.env', 'data', 'node_modules', '.git'])
      expect(
        ignored.map((l) => l.replace(/^\/|\/$/g, '')),
        entry,
      ).toContain(entry);
    expect(ignored).toEqual(expect.arrayContaining(['.env.*']));
    // The worker role shares the image: it must not inherit a 0.0.0.0 HOST that would need a token.
    expect(readFileSync('Dockerfile', 'utf8')).not.toMatch(/^ENV\b.*\bHOST=/m);
  });
});
