// Mastodon timeline identity: `mastodon:tag:<tag>@host` and `mastodon:user:<user>@host` refs and
// the web URLs they come from, normalised one way (lower-case host without a trailing dot or
// default port, lower-case tag or user name).
import type { DetectedSource } from '../types.js';

/** Letters of any script (with their combining marks), digits and underscores, as Mastodon's hashtags. */
const TAG = /^[\p{L}\p{M}\p{N}_]{1,100}$/u;
const USER = /^[a-z0-9_]{1,30}$/;

export type MastodonTimeline = { kind: 'tag'; tag: string } | { kind: 'user'; user: string };

export function normalizeTag(raw: string): string | undefined {
  const tag = raw.normalize('NFC').toLowerCase();
  return TAG.test(tag) ? tag : undefined;
}

export function normalizeUser(raw: string): string | undefined {
  const user = raw.toLowerCase();
  return USER.test(user) ? user : undefined;
}

/** Origin and ref host of `scheme//authority`; undefined unless it is a bare host (and port). */
export function hostOf(scheme: string, authority: string): { instance: string; host: string } | undefined {
  if (scheme !== 'https:' && scheme !== 'http:') return undefined;
  if (!authority || authority.length > 300 || /[@/\\?#\s]/.test(authority)) return undefined;
  let url: URL;
  try {
    url = new URL(`${scheme}//${authority}`);
  } catch {
    return undefined;
  }
  // URL already lower-cases the host, converts IDNs to punycode and drops the default port;
  // "host." is the same host as "host".
  if (url.hostname.endsWith('.')) url.hostname = url.hostname.slice(0, -1);
  const name = url.hostname;
  if (!name || name.startsWith('.') || name.endsWith('.') || name.includes('..')) return undefined;
  return { instance: url.origin, host: url.host };
}

export function detected(timeline: MastodonTimeline, at: { instance: string; host: string }): DetectedSource {
  const name = timeline.kind === 'tag' ? `tag:${timeline.tag}` : `user:${timeline.user}`;
  const url = timeline.kind === 'tag' ? `${at.instance}/tags/${encodeURIComponent(timeline.tag)}` : `${at.instance}/@${timeline.user}`;
  return { kind: 'mastodon', ref: `mastodon:${name}@${at.host}`, instance: at.instance, host: at.host, name, url };
}

/** The timeline a source's `name` (`tag:<tag>` or `user:<user>`) stands for; undefined when malformed. */
export function timelineOf(name: string): MastodonTimeline | undefined {
  const m = /^(tag|user):(.+)$/s.exec(name);
  if (!m) return undefined;
  if (m[1] === 'tag') {
    const tag = normalizeTag(m[2]);
    return tag ? { kind: 'tag', tag } : undefined;
  }
  const user = normalizeUser(m[2]);
  return user ? { kind: 'user', user } : undefined;
}

function decoded(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/**
 * `https://host/tags/<tag>`, `https://host/@<user>` or `https://host/@<user>@<home>`: the last is
 * how an instance shows an account of another one, which is read from its home (with the URL's scheme).
 */
export function fromWebUrl(url: URL): DetectedSource | undefined {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  if (url.username || url.password || url.search || url.hash) return undefined;
  const at = hostOf(url.protocol, url.host);
  if (!at) return undefined;

  const tagPath = /^\/tags\/([^/]+)\/?$/.exec(url.pathname);
  if (tagPath) {
    const tag = normalizeTag(decoded(tagPath[1]) ?? '');
    return tag ? detected({ kind: 'tag', tag }, at) : undefined;
  }
  const userPath = /^\/@([^/]+)\/?$/.exec(url.pathname);
  if (!userPath) return undefined;
  const segment = decoded(userPath[1]);
  if (!segment) return undefined;
  const sep = segment.indexOf('@');
  const user = normalizeUser(sep === -1 ? segment : segment.slice(0, sep));
  const home = sep === -1 ? at : hostOf(url.protocol, segment.slice(sep + 1));
  return user && home ? detected({ kind: 'user', user }, home) : undefined;
}

/** `mastodon:tag:<tag>@host` or `mastodon:user:<user>@host`, read over https. */
export function fromRef(ref: string): DetectedSource | undefined {
  const m = /^mastodon:(tag|user):([^@\s]+)@([^@\s]+)$/.exec(ref.trim());
  if (!m) return undefined;
  const timeline = timelineOf(`${m[1]}:${m[2]}`);
  const at = hostOf('https:', m[3]);
  return timeline && at ? detected(timeline, at) : undefined;
}
