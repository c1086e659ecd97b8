import { openPool } from '../../src/db/pool.js';

/** Creates a database on a Postgres server and returns its URL (tests and benches). */
export async function createDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = openPool(serverUrl, { max: 1 });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end({ timeout: 1 });
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
