// Stream cursors: a position in every shard node's post_events log, `{ "<node>": seq, ... }`,
// as opaque base64url JSON. A node a resume cursor does not list is read from its start.

/** Node name → seq of the last event seen from that node's log. */
export type StreamPosition = ReadonlyMap<string, number>;

const NODE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const MAX_CURSOR_LENGTH = 4096;

export function encodeStreamCursor(position: StreamPosition): string {
  const entries = [...position.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return Buffer.from(JSON.stringify(Object.fromEntries(entries)), 'utf8').toString('base64url');
}

/** The position, or undefined for anything that is not a cursor this service produced. */
export function decodeStreamCursor(raw: string): Map<string, number> | undefined {
  if (raw.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(raw)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const position = new Map<string, number>();
  for (const [node, seq] of Object.entries(value)) {
    if (!NODE_NAME.test(node) || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return undefined;
    position.set(node, seq);
  }
  return position;
}
