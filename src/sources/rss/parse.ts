// A feed document (RSS 2.0, RSS 1.0/RDF, Atom 1.0 or JSON Feed 1.x) as the posts and metadata we
// store. Pure: no I/O. Feeds are written by anyone, so every value is treated as untrusted: wrong
// types, dates in words, `javascript:` links and NUL characters never get past here, and nothing
// but a SourceError ever leaves.
import { DetectError, parseFeed, type AnyFeed } from 'feedsmith';
import type { PostInput } from '../../db/posts.js';
import { SourceError } from '../errors.js';
import { itemIdOf } from '../types.js';

/** Most posts one fetch yields (a feed is its newest items; more is a dump, not a feed). */
export const MAX_ITEMS = 500;
/** Items the parser reads at most: room for duplicates before the cap above. */
const PARSE_LIMIT = 2000;
const MAX_TITLE_CHARS = 2000;
const TITLE_FROM_TEXT_CHARS = 120;
const MAX_BODY_CHARS = 200_000;
const MAX_URL_CHARS = 4096;
const MAX_META_CHARS = 10_000;

export interface ParsedFeed {
  /** The feed's title ('' when it has none: the caller names it). */
  title: string;
  description: string | null;
  /** The web page the feed belongs to. */
  link: string | null;
  icon: string | null;
  /** RSS `<ttl>`: how long the feed may be cached. */
  ttlSeconds?: number;
  items: PostInput[];
}

export interface ParseOptions {
  contentType?: string;
  /** The feed's URL: relative links resolve against it. */
  baseUrl?: string;
  /** What the document is called in error messages. */
  label?: string;
  /** Publication time of items without a usable date. */
  now?: Date;
}

/** One entry in any format, before it becomes a post. */
interface RawItem {
  guid?: string;
  link?: string;
  title?: string;
  /** Atom titles may be HTML; shown as text. */
  titleIsHtml?: boolean;
  body?: string;
  author?: string;
  thumbnail?: string;
  published?: string;
  updated?: string;
}

interface RawFeed {
  title?: string;
  description?: string;
  link?: string;
  icon?: string;
  ttlMinutes?: number;
  items: RawItem[];
}

export function parseFeedText(text: string, opts: ParseOptions = {}): ParsedFeed {
  const label = opts.label ?? 'the response';
  const doc = text.replace(/^\uFEFF/, '');
  if (!doc.trim()) throw new SourceError('UnsupportedSource', `${label} is empty, not an RSS, Atom or JSON feed`);
  // Servers mislabel feeds as text/html, so the type alone refuses nothing: the body must look like a page too.
  if (looksLikeHtml(doc)) throw notAFeedPage(label);
  let parsed: AnyFeed;
  try {
    parsed = parseFeed(doc, { maxItems: PARSE_LIMIT });
  } catch (err) {
    if (/html/i.test(opts.contentType ?? '') || /<html[\s>]/i.test(doc.slice(0, 4096))) throw notAFeedPage(label, err);
    if (err instanceof DetectError) throw new SourceError('UnsupportedSource', `${label} is not an RSS, Atom or JSON feed`, { cause: err });
    throw new SourceError('InvalidResponse', `${label} is a malformed feed (${messageOf(err)})`, { cause: err });
  }
  try {
    return normalise(rawOf(parsed), opts);
  } catch (err) {
    // The checks above should leave nothing to throw; if a shape still surprises us, it is the feed's fault.
    throw new SourceError('InvalidResponse', `${label} could not be read as a feed (${messageOf(err)})`, { cause: err });
  }
}

function notAFeedPage(label: string, cause?: unknown): SourceError {
  return new SourceError(
    'UnsupportedSource',
    `${label} is a web page (HTML), not an RSS, Atom or JSON feed: add the feed's own URL (pages link it as "RSS" or "Atom")`,
    { cause },
  );
}

function looksLikeHtml(doc: string): boolean {
  const start = doc.slice(0, 2048).replace(/^(?:\s|<!--[\s\S]*?-->)+/, '');
  return /^<!doctype\s+html[\s>]/i.test(start) || /^<html[\s>]/i.test(start);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message.slice(0, 200) : String(err).slice(0, 200);
}

// ---- format → RawFeed ----

function rawOf(parsed: AnyFeed): RawFeed {
  switch (parsed.format) {
    case 'rss': {
      const f = parsed.feed;
      return {
        title: str(f.title),
        description: str(f.description),
        link: str(f.link),
        icon: str(f.image?.url),
        ttlMinutes: typeof f.ttl === 'number' ? f.ttl : Number(str(f.ttl)),
        items: list(f.items).map((i) => ({
          guid: str(i.guid?.value),
          link: str(i.link),
          title: str(i.title),
          body: str(i.content?.encoded) ?? str(i.description),
          author: personOf(first(i.authors)) ?? str(first(i.dc?.creators)),
          thumbnail: imageOf(i.enclosures, i.media),
          published: str(i.pubDate) ?? str(first(i.dc?.dates)) ?? str(i.atom?.published),
          updated: str(i.atom?.updated),
        })),
      };
    }
    case 'rdf': {
      const f = parsed.feed;
      return {
        title: str(f.title),
        description: str(f.description),
        link: str(f.link),
        icon: str(f.image?.url),
        items: list(f.items).map((i) => ({
          guid: str(i.rdf?.about),
          link: str(i.link),
          title: str(i.title),
          body: str(i.content?.encoded) ?? str(i.description),
          author: str(first(i.dc?.creators)),
          thumbnail: imageOf(undefined, i.media),
          published: str(first(i.dc?.dates)),
        })),
      };
    }
    case 'atom': {
      const f = parsed.feed;
      const feedAuthor = personOf(first(f.authors));
      return {
        title: htmlText(f.title),
        description: htmlText(f.subtitle),
        link: alternateOf(f.links),
        icon: str(f.icon) ?? str(f.logo),
        items: list(f.entries).map((e) => ({
          guid: str(e.id),
          link: alternateOf(e.links),
          title: str(e.title?.value),
          titleIsHtml: /html/i.test(str(e.title?.type) ?? ''),
          body: str(e.content?.value) ?? str(e.summary?.value),
          author: personOf(first(e.authors)) ?? feedAuthor,
          thumbnail: imageOf(
            list(e.links)
              .filter((l) => l.rel === 'enclosure')
              .map((l) => ({ url: l.href, type: l.type })),
            e.media,
          ),
          published: str(e.published) ?? str(e.updated),
          updated: str(e.updated),
        })),
      };
    }
    case 'json': {
      const f = parsed.feed;
      const feedAuthor = str(first(f.authors)?.name);
      return {
        title: str(f.title),
        description: str(f.description),
        link: str(f.home_page_url),
        icon: str(f.icon) ?? str(f.favicon),
        items: list(f.items).map((i) => ({
          guid: str(i.id),
          link: str(i.url) ?? str(i.external_url),
          title: str(i.title),
          body: str(i.content_html) ?? str(i.content_text) ?? str(i.summary),
          author: str(first(i.authors)?.name) ?? feedAuthor,
          thumbnail:
            str(i.image) ??
            str(i.banner_image) ??
            imageOf(
              list(i.attachments).map((a) => ({ url: a.url, type: a.mime_type })),
              undefined,
            ),
          published: str(i.date_published) ?? str(i.date_modified),
          updated: str(i.date_modified),
        })),
      };
    }
  }
}

// ---- RawFeed → ParsedFeed ----

function normalise(raw: RawFeed, opts: ParseOptions): ParsedFeed {
  const now = (opts.now ?? new Date()).toISOString();
  const byId = new Map<number, PostInput>();
  for (const item of raw.items) {
    const post = toPost(item, opts.baseUrl, now);
    // The first of two items with one identity wins: feeds list the newest first.
    if (post && !byId.has(post.lemmyId)) byId.set(post.lemmyId, post);
    if (byId.size >= MAX_ITEMS) break;
  }
  const ttl = raw.ttlMinutes;
  return {
    title: clip(oneLine(raw.title ?? ''), MAX_META_CHARS),
    description: raw.description ? clip(raw.description, MAX_META_CHARS) : null,
    link: httpUrl(raw.link, opts.baseUrl) ?? null,
    icon: httpUrl(raw.icon, opts.baseUrl) ?? null,
    ...(ttl !== undefined && Number.isFinite(ttl) && ttl > 0 ? { ttlSeconds: Math.round(ttl * 60) } : {}),
    items: [...byId.values()],
  };
}

function toPost(item: RawItem, baseUrl: string | undefined, now: string): PostInput | undefined {
  const link = httpUrl(item.link, baseUrl);
  const guid = item.guid?.trim() || undefined;
  const body = item.body ? clip(item.body, MAX_BODY_CHARS) : null;
  const rawTitle = item.title ? oneLine(item.titleIsHtml ? htmlToText(item.title) : item.title) : '';
  const title = clip(rawTitle || clip(htmlToText(body ?? ''), TITLE_FROM_TEXT_CHARS) || '(untitled)', MAX_TITLE_CHARS);
  const published = isoOf(item.published);
  // Identity must not change between fetches: the raw date, never the "now" an undated item gets.
  const fallbackKey = rawTitle || item.published ? `${rawTitle}\n${item.published ?? ''}` : body ? `body\n${body}` : undefined;
  const key = guid ?? link ?? fallbackKey;
  if (!key) return undefined; // nothing at all to tell it by, or to show
  return {
    lemmyId: itemIdOf(key),
    apId: clip((guid && httpUrl(guid)) ?? link ?? key, MAX_URL_CHARS),
    title,
    url: link ?? null,
    body,
    author: item.author ? clip(oneLine(item.author), 200) || null : null,
    thumbnail: httpUrl(item.thumbnail, baseUrl) ?? null,
    published: published ?? now,
    updated: isoOf(item.updated) ?? null,
    score: 0,
    upvotes: 0,
    downvotes: 0,
    comments: 0,
    nsfw: false,
    featured: false,
  };
}

// ---- defensive readers ----

/** A non-empty string from whatever the parser gave (numbers become strings); NULs dropped (Postgres refuses them). */
function str(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string') return undefined;
  const s = v.replaceAll('\u0000', '').trim();
  return s || undefined;
}

function list<T>(v: T[] | undefined): T[] {
  return Array.isArray(v) ? v.filter((x) => x !== null && typeof x === 'object') : [];
}

function first<T>(v: T[] | undefined): T | undefined {
  return Array.isArray(v) ? v[0] : undefined;
}

function personOf(p: { name?: unknown; email?: unknown } | undefined): string | undefined {
  return p && typeof p === 'object' ? (str(p.name) ?? str(p.email)) : undefined;
}

function htmlText(t: { value?: unknown; type?: unknown } | undefined): string | undefined {
  const value = t && typeof t === 'object' ? str(t.value) : undefined;
  return value && /html/i.test(str(t?.type) ?? '') ? htmlToText(value) : value;
}

function alternateOf(links: { href?: unknown; rel?: unknown }[] | undefined): string | undefined {
  const all = list(links);
  const alternate = all.find((l) => l.rel === undefined || l.rel === 'alternate') ?? all.find((l) => l.rel !== 'self');
  return str(alternate?.href);
}

const IMAGE_EXT = /\.(?:jpe?g|png|gif|webp|avif)(?:[?#]|$)/i;

interface MediaLike {
  thumbnails?: { url?: unknown }[];
  contents?: { url?: unknown; type?: unknown; medium?: unknown }[];
}

/** The first image among enclosures, media:thumbnail and media:content. */
function imageOf(enclosures: { url?: unknown; type?: unknown }[] | undefined, media: MediaLike | undefined): string | undefined {
  const isImage = (e: { url?: unknown; type?: unknown; medium?: unknown }) => {
    const type = str(e.type);
    return type ? /^image\//i.test(type) : e.medium === 'image' || IMAGE_EXT.test(str(e.url) ?? '');
  };
  const m = media && typeof media === 'object' ? media : undefined;
  return str(list(m?.thumbnails)[0]?.url) ?? str(list(enclosures).find(isImage)?.url) ?? str(list(m?.contents).find(isImage)?.url);
}

/** An absolute http(s) URL, or undefined: `javascript:`, `data:` and the like are dropped. */
export function httpUrl(v: string | undefined, base?: string): string | undefined {
  if (!v || v.length > MAX_URL_CHARS) return undefined;
  try {
    const url = new URL(v, base);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

/** ISO time of a feed date; undefined for words ("yesterday"), bare numbers and years out of range. */
function isoOf(v: string | undefined): string | undefined {
  // V8's Date.parse reads "12" as 2001-12-01: insist on a year (or an RFC 822 "2 Jan 24").
  if (!v || v.length > 100 || !(/\d{4}/.test(v) || /\d{1,2}\s+[a-z]{3}\s+\d{2}\b/i.test(v))) return undefined;
  const t = Date.parse(v);
  if (!Number.isFinite(t)) return undefined;
  const d = new Date(t);
  const year = d.getUTCFullYear();
  return year >= 1000 && year <= 9999 ? d.toISOString() : undefined;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/** Text of an HTML fragment, on one line: enough to title an untitled item. */
function htmlToText(html: string): string {
  const text = html
    .replace(/<(script|style)[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#x[0-9a-f]{1,6}|#\d{1,7}|[a-z]{2,6});/gi, (whole, name: string) => {
      if (name[0] !== '#') return ENTITIES[name.toLowerCase()] ?? whole;
      const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff) ? String.fromCodePoint(code) : ' ';
    });
  return oneLine(text);
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** At most `max` characters, never cutting a surrogate pair in half. */
function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  const cut = s.slice(0, max);
  return /[\ud800-\udbff]$/.test(cut) ? cut.slice(0, -1) : cut;
}
