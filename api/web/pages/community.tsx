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
          <a class="button" href={`${path}/remove`}>
            Remove
          </a>
          <a class="button" href={workflowUrl(ctx, community.workflowId)} target="_blank" rel="noopener noreferrer">
            Workflow in Temporal UI
          </a>
          {safeUrl(community.instance) && (
            <a class="button" href={`${community.instance}/c/${encodeURIComponent(community.name)}`} rel="noopener noreferrer">
              On {community.host}
            </a>
          )}
        </div>
      </section>
      <section class="card">
        <PostList posts={props.posts} />
        <OlderLink href={props.next ? `${path}?before=${encodeURIComponent(props.next)}&limit=${props.limit}` : undefined} />
      </section>
    </>
  );
}
