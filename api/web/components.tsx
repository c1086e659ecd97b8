/** @jsxImportSource hono/jsx */
// Components and helpers shared by the website's pages. Hono JSX escapes every interpolated value;
// nothing from Lemmy is ever inserted raw, and only http(s) URLs become links or images.
import type { Context } from 'hono';
import type { CommunityJson, PostJson } from '../presenters.js';
import type { ApiDeps } from '../deps.js';
import { webAuthorized } from '../auth.js';

/** What every page may need to know besides its own data. */
export interface PageContext {
  temporalUiUrl: string;
  namespace: string;
  tokenRequired: boolean;
  loggedIn: boolean;
}

export function pageContext(deps: Pick<ApiDeps, 'config'>, c?: Context): PageContext {
  const token = deps.config.API_TOKEN;
  return {
    temporalUiUrl: deps.config.TEMPORAL_UI_URL,
    namespace: deps.config.TEMPORAL_NAMESPACE,
    tokenRequired: Boolean(token),
    loggedIn: c ? Boolean(token) && webAuthorized(c, token) : false,
  };
}

/** A path on this site to go back to after a form (never another site: no `//host`, no `/\\host`). */
export function localPath(v: unknown): string {
  return typeof v === 'string' && /^\/(?![/\\])[^\s]*$/.test(v) && v.length < 1000 ? v : '/';
}

/** Only http(s) URLs become links or images; anything else (javascript:, data:) is dropped. */
export function safeUrl(u: string | null | undefined): string | undefined {
  if (!u) return undefined;
  try {
    const url = new URL(u);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.toString() : undefined;
  } catch {
    return undefined;
  }
}

export const communityPath = (ref: string) => `/c/${encodeURIComponent(ref)}`;

export function workflowUrl(ctx: PageContext, workflowId: string): string {
  return `${ctx.temporalUiUrl.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(ctx.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

/** A timestamp as "5m ago" / "in 3m", with the exact time in the title. */
export function Time({ iso, future }: { iso: string | null; future?: boolean }) {
  if (!iso) return <span class="muted">—</span>;
  const ms = Date.parse(iso);
  const secs = Math.round((future ? ms - Date.now() : Date.now() - ms) / 1000);
  let rel: string;
  if (future && secs <= 0) rel = 'due now';
  else {
    const a = Math.abs(secs);
    const span =
      a < 60 ? `${a}s` : a < 3600 ? `${Math.floor(a / 60)}m` : a < 86_400 ? `${Math.floor(a / 3600)}h` : `${Math.floor(a / 86_400)}d`;
    rel = future ? `in ${span}` : `${span} ago`;
  }
  return (
    <time datetime={iso} title={iso}>
      {rel}
    </time>
  );
}

export function StateBadge({ state }: { state: string }) {
  return <span class={`state state-${state}`}>{state}</span>;
}

export function Flash({ message }: { message?: string }) {
  return message ? (
    <p class="flash" role="status">
      {message}
    </p>
  ) : null;
}

export function RefreshButton({ community, back }: { community: CommunityJson; back: string }) {
  return (
    <form method="post" action={`${communityPath(community.ref)}/refresh`}>
      <input type="hidden" name="back" value={back} />
      <button type="submit" aria-label={`Refresh ${community.ref} now`}>
        Refresh now
      </button>
    </form>
  );
}

/** `stream`: an /api/stream URL; live.js then adds new posts to the list as they are stored. */
export function PostList({ posts, showCommunity, stream }: { posts: PostJson[]; showCommunity?: boolean; stream?: string }) {
  if (posts.length === 0 && !stream) return <p class="muted">No posts stored yet.</p>;
  return (
    <>
      {posts.length === 0 && (
        <p class="muted" data-empty-posts>
          No posts stored yet.
        </p>
      )}
      <ul class="posts" data-stream={stream} data-show-community={showCommunity ? '' : undefined}>
        {posts.map((p) => {
          const original = safeUrl(p.apId);
          const link = safeUrl(p.url);
          return (
            <li data-post-id={p.id}>
              <div class="title">
                {original ? (
                  <a href={original} rel="noopener noreferrer nofollow">
                    {p.title}
                  </a>
                ) : (
                  p.title
                )}
              </div>
              <div class="muted">
                {showCommunity && p.communityRef && (
                  <>
                    <a href={communityPath(p.communityRef)}>{p.communityRef}</a>
                    {' · '}
                  </>
                )}
                {p.author ?? 'unknown'} · <Time iso={p.published} /> · {p.score} points · {p.comments} comments
                {p.nsfw && ' · NSFW'}
                {link && (
                  <>
                    {' · '}
                    <a href={link} rel="noopener noreferrer nofollow">
                      {new URL(link).host}
                    </a>
                  </>
                )}
              </div>
              {p.body && <div class="muted">{p.body.length > 280 ? `${p.body.slice(0, 280)}…` : p.body}</div>}
            </li>
          );
        })}
      </ul>
    </>
  );
}

/** "Older →" link of a keyset-paged list. */
export function OlderLink({ href }: { href?: string }) {
  return (
    <div class="pager">
      {href && (
        <a id="older" href={href}>
          Older posts →
        </a>
      )}
    </div>
  );
}
