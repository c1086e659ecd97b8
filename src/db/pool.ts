import postgres, { type Sql } from 'postgres';

export type { Sql };

/** No statement runs longer, so one hung node cannot hold locks for ever (a transaction may raise it with `set local`). */
export const STATEMENT_TIMEOUT_MS = 30_000;

/** Sees every statement a pool sends: the pool's name (`catalog`, a node name), the SQL text and the database. */
export type StatementObserver = (pool: string, query: string, database: string) => void;
let statementObserver: StatementObserver | undefined;

/**
 * Instrumentation (tests count statements per node with it): pools opened while an observer is
 * installed report every statement they send to it, through the driver's `debug` hook. Pools
 * opened without one pay nothing (the hook costs a stack capture per query). `undefined` removes it.
 */
export function observeStatements(observer: StatementObserver | undefined): void {
  statementObserver = observer;
}

/** A connection pool to one Postgres node. int8 columns come back as numbers (ids stay < 2^53). */
export function openPool(url: string, opts: { max?: number; name?: string; statementTimeoutMs?: number } = {}): Sql {
  const pool = opts.name ?? 'postgres';
  const database = statementObserver ? databaseOf(url) : '';
  return postgres(url, {
    ...(statementObserver ? { debug: (_connection: number, query: string) => statementObserver?.(pool, query, database) } : {}),
    max: opts.max ?? 10,
    idle_timeout: 30,
    connect_timeout: 10,
    onnotice: () => {},
    connection: {
      application_name: `lemmy-fetcher${opts.name ? `:${opts.name}` : ''}`,
      statement_timeout: opts.statementTimeoutMs ?? STATEMENT_TIMEOUT_MS,
    },
    types: {
      // Timestamps pass through as given: Lemmy's have microseconds, which Date would cut.
      date: {
        to: 1184,
        from: [1082, 1114, 1184],
        serialize: (x: unknown) => (x instanceof Date ? x.toISOString() : String(x)),
        parse: (x: string) => new Date(x),
      },
      bigint: { to: 20, from: [20], parse: (x: string) => Number(x), serialize: (x: number) => String(x) },
    },
  });
}

function databaseOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).pathname.slice(1));
  } catch {
    return '';
  }
}

/** Whether the node answers at all (health checks). */
export async function ping(sql: Sql): Promise<void> {
  await sql`select 1`;
}
