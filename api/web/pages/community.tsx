/** @jsxImportSource hono/jsx */
// `/c/<name@host>`: one community's metadata, state and actions, and its posts, newest first.
import type { CommunityJson, PostJson } from '../../presenters.js';
import {
  communityPath,
  Flash,
  OlderLink,
  PostList,
  RefreshButton,
  safeUrl,
  StateBadge,
  Time,
  workflowUrl,
  type PageContext,
} from '../components.js';

export function CommunityPage(props: {
  ctx: PageContext;
  community: CommunityJson;
  posts: PostJson[];
  next: string | null;
  flash?: string;
  limit: number;
  /** The newest page: new posts are added live (live.js). */
  live?: boolean;
  /** The user signed in on this browser, and whether they follow this community. */
  viewer?: { name: string; following: boolean };
}) {
  const { community, ctx } = props;
  const { status } = community;
  const icon = safeUrl(community.icon);
  const path = communityPath(community.ref);
  return (
    <>
      <h1 class="with-icon">
        {icon && <img class="icon" src={icon} alt="" referrerpolicy="no-referrer" />}
        <span>{community.title ?? community.name}</span>
      </h1>
      <Flash message={props.flash} />
      <section class="card">
        <p class="ref">
          {community.ref} · {community.subscribers ?? '—'} subscribers · {community.postsStored ?? '—'} posts stored · state{' '}
          <StateBadge state={status.state} /> · last sync <Time iso={status.lastSyncAt} /> · next sync{' '}
          <Time iso={status.nextSyncAt} future /> · every {community.refreshSeconds}s
        </p>
        <p class="muted refresh-policy">
          {community.kind} · {community.refreshPolicy} refresh
          {status.reason ? ` (${status.reason})` : ''}
          {status.consecutiveFailures > 0 ? ` · ${status.consecutiveFailures} failed syncs in a row` : ''}
        </p>
        {status.lastError && (
          <p class="error">
            {status.lastError.code}: {status.lastError.message}
          </p>
        )}
        {community.description && (
          <p class="muted description">
            {community.description.length > 600 ? `${community.description.slice(0, 600)}…` : community.description}
          </p>
        )}
        <div class="actions">
          <RefreshButton community={community} back={path} />
          {props.viewer && (
            <form method="post" action={`/u/${encodeURIComponent(props.viewer.name)}/follows`} id="follow">
              <input type="hidden" name="community" value={community.ref} />
              <input type="hidden" name="action" value={props.viewer.following ? 'unfollow' : 'follow'} />
              <input type="hidden" name="back" value={path} />
              <button type="submit" class={props.viewer.following ? '' : 'primary'}>
                {props.viewer.following ? `Unfollow (as ${props.viewer.name})` : `Follow (as ${props.viewer.name})`}
              </button>
            </form>
          )}
          <a class="button" href={`${path}/remove`}>
            Remove
          </a>
          <a class="button" href={workflowUrl(ctx, community.workflowId)} target="_blank" rel="noopener noreferrer">
            Workflow in Temporal UI
          </a>
          {safeUrl(community.url) && (
            <a class="button" href={safeUrl(community.url)} rel="noopener noreferrer">
              On {community.host}
            </a>
          )}
        </div>
        <form class="policy" method="post" action={`${path}/refresh-policy`}>
          <label>
            Refresh
            <select name="refreshPolicy">
              <option value="adaptive" selected={community.refreshPolicy === 'adaptive'}>
                adaptive (as often as it posts)
              </option>
              <option value="fixed" selected={community.refreshPolicy === 'fixed'}>
                fixed
              </option>
            </select>
          </label>
          <label>
            every (s, fixed)
            <input name="refreshSeconds" type="number" min="1" max="86400" placeholder={String(community.refreshSeconds)} />
          </label>
          <label>
            min (s)
            <input name="minRefreshSeconds" type="number" min="1" max="86400" value={String(community.minRefreshSeconds)} />
          </label>
          <label>
            max (s)
            <input name="maxRefreshSeconds" type="number" min="1" max="86400" value={String(community.maxRefreshSeconds)} />
          </label>
          <button type="submit">Save</button>
        </form>
      </section>
      <section class="card">
        <PostList posts={props.posts} stream={props.live ? `/api/stream?communities=${encodeURIComponent(community.ref)}` : undefined} />
        <OlderLink href={props.next ? `${path}?before=${encodeURIComponent(props.next)}&limit=${props.limit}` : undefined} />
      </section>
    </>
  );
}
