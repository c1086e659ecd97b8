// Community identity: `name@host` refs, instance URLs and workflow ids, normalised one way
// everywhere (lower-case host without a trailing dot, no default port, no trailing slash,
// lower-case name). Malformed input of any kind is a RefError, which the API turns into a 400.

export class RefError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'RefError';
  }
}

const NAME = /^[a-z0-9_]{1,100}$/;

export interface Instance {
  /** Origin used for requests, e.g. "https://lemmy.world" or "http://127.0.0.1:8536". */
  instance: string;
  /** Host as it appears in refs and workflow ids, e.g. "lemmy.world" or "127.0.0.1:8536". */
  host: string;
}

export function normalizeInstance(input: string, field = 'instance'): Instance {
  const raw = input.trim();
  if (!raw) throw new RefError(field, `${field} must not be empty`);
  if (raw.length > 500) throw new RefError(field, `${field} is too long`);
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `https://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new RefError(field, `${field} is not a valid URL: ${JSON.stringify(raw.slice(0, 100))}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RefError(field, `${field} must be an http(s) URL`);
  if (url.username || url.password) throw new RefError(field, `${field} must not contain credentials`);
  if (url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) {
    throw new RefError(field, `${field} must be the instance's base URL, like https://lemmy.world (no path or query)`);
  }
  if (!url.hostname) throw new RefError(field, `${field} has no host`);
  // URL already lower-cases the host, converts IDNs to punycode and drops the default port.
  // "lemmy.world." is the same host as "lemmy.world" (fully qualified): one ref for both.
  if (url.hostname.endsWith('.')) url.hostname = url.hostname.slice(0, -1);
  if (!url.hostname || url.hostname.startsWith('.') || url.hostname.endsWith('.') || url.hostname.includes('..')) {
    throw new RefError(field, `${field} has an empty label in its host: ${JSON.stringify(raw.slice(0, 100))}`);
  }
  return { instance: url.origin, host: url.host };
}

export function normalizeName(input: string, field = 'name'): string {
  const name = input.trim().replace(/^!/, '').toLowerCase();
  if (!NAME.test(name)) {
    throw new RefError(field, `${field} must be a Lemmy community name: 1 to 100 letters, digits or underscores`);
  }
  return name;
}

/**
 * Parses "name@host", "!name@host", "https://host/c/name" or "https://host/c/name@home" into a
 * normalised community. A `c/name@home` URL is how an instance shows a community of another one:
 * it names the community on `home` (reached with the URL's scheme), not on `host`.
 */
export function parseCommunity(input: string, field = 'community'): Instance & { name: string; ref: string } {
  const raw = input.trim();
  const url = /^(https?):\/\/([^/?#]+)\/c\/([^/?#]+)\/?$/i.exec(raw);
  if (url) {
    const scheme = url[1].toLowerCase();
    let segment: string;
    try {
      segment = decodeURIComponent(url[3]);
    } catch {
      throw new RefError(field, `${field} has a malformed %-escape in its community name: ${JSON.stringify(url[3].slice(0, 100))}`);
    }
    const at = segment.indexOf('@');
    const home = at === -1 ? undefined : segment.slice(at + 1);
    if (home !== undefined && (!home || /[@/\\?#\s]/.test(home))) {
      throw new RefError(field, `${field} must look like ${scheme}://host/c/name or ${scheme}://host/c/name@home`);
    }
    const inst = normalizeInstance(`${scheme}://${home ?? url[2]}`, field);
    const name = normalizeName(at === -1 ? segment : segment.slice(0, at), field);
    return { ...inst, name, ref: `${name}@${inst.host}` };
  }
  const m = /^!?([^@\s]+)@([^@\s]+)$/.exec(raw);
  if (!m) throw new RefError(field, `${field} must look like name@host, e.g. technology@lemmy.world`);
  const name = normalizeName(m[1], field);
  const inst = normalizeInstance(m[2], field);
  return { ...inst, name, ref: `${name}@${inst.host}` };
}

export function communityRef(name: string, host: string): string {
  return `${name}@${host}`;
}
