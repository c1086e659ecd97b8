// The sources lemmy-fetcher can track: one line per source. Order is detection order for a URL
// (a feed comes last: any URL may be one).
import { LemmyClient } from './lemmy/client.js';
import { createLemmyAdapter } from './lemmy/adapter.js';
import { createMastodonAdapter } from './mastodon/adapter.js';
import { createRssAdapter } from './rss/adapter.js';
import type { SourceHttp } from './http.js';
import type { DetectedSource, SourceAdapter, SourceKind } from './types.js';

export interface Sources {
  lemmy: LemmyClient;
  adapter(kind: SourceKind): SourceAdapter;
  /** Every kind the URL may be, most specific first (nothing fetched yet). */
  detect(url: URL): DetectedSource[];
  /** A ref of any kind, normalised; undefined when it is none. */
  parseRef(ref: string): DetectedSource | undefined;
}

export function createSources(http: SourceHttp): Sources {
  const lemmy = new LemmyClient(http);
  const adapters: SourceAdapter[] = [
    createLemmyAdapter(lemmy),
    createMastodonAdapter(http),
    createRssAdapter(http), // last: it claims any http(s) URL
  ];
  const byKind = new Map(adapters.map((a) => [a.kind, a]));
  return {
    lemmy,
    adapter(kind) {
      const a = byKind.get(kind);
      if (!a) throw new Error(`no adapter for source kind ${JSON.stringify(kind)}`);
      return a;
    },
    detect(url) {
      return adapters.flatMap((a) => a.fromUrl(url) ?? []);
    },
    parseRef(ref) {
      for (const a of adapters) {
        const found = a.parseRef(ref);
        if (found) return found;
      }
      return undefined;
    },
  };
}
