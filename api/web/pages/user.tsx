/** @jsxImportSource hono/jsx */
// `/u/<name>`: a user's feed (the newest posts of the communities they follow) and their activities.
import type { ActivityJson, FeedPage, ProfileJson } from '../../users.js';
import { communityPath, OlderLink, PostList, Time } from '../components.js';

export const userPath = (name: string) => `/u/${encodeURIComponent(name)}`;

/** "community:x@host" and "user:bob" become links to their pages; anything else is shown as it is. */
function ObjectLink({ object }: { object: string | null }) {
  if (!object) return null;
  const [kind, ...rest] = object.split(':');
  const ref = rest.join(':');
  if (kind === 'community' && ref) return <a href={communityPath(ref)}>{ref}</a>;
  if (kind === 'user' && ref) return <a href={userPath(ref)}>{ref}</a>;
  return <span>{object}</span>;
}

const VERBS: Record<string, string> = { follow: 'followed', unfollow: 'unfollowed' };

export function ActivityList({ activities }: { activities: ActivityJson[] }) {
  if (activities.length === 0) return <p class="muted">No activities yet.</p>;
  return (
    <ul class="activities">
      {activities.map((a) => (
        <li data-activity-id={String(a.id)} data-verb={a.verb}>
          {VERBS[a.verb] ?? a.verb} <ObjectLink object={a.object} />
          {a.target && (
            <>
              {' in '}
              <ObjectLink object={a.target} />
            </>
          )}{' '}
          <span class="muted">
            <Time iso={a.published} />
          </span>
        </li>
      ))}
    </ul>
  );
}

export function UserPage(props: {
  profile: ProfileJson;
  feed: FeedPage;
  activities: ActivityJson[];
  /** Query string of the older activities, if there are more. */
  olderActivities: string | null;
  limit: number;
  /** The newest page of the feed: new posts are added live (live.js). */
  live?: boolean;
  /** This browser is signed in as this user (follow buttons work). */
  signedIn?: boolean;
}) {
  const { profile, feed } = props;
  const path = userPath(profile.name);
  return (
    <>
      <h1>{profile.name}</h1>
      <section class="card">
        <p class="ref" id="profile">
          follows {profile.follows.communities} communities and {profile.follows.users} users · {profile.followers} followers · since{' '}
          <Time iso={profile.createdAt} />
        </p>
        {props.signedIn ? (
          <form method="post" action={`${path}/signout`} class="inline">
            Signed in as {profile.name}: community pages show follow buttons. <button type="submit">Sign out</button>
          </form>
        ) : (
          <form method="post" action={`${path}/signin`} class="inline" id="signin">
            <label>
              Sign in as {profile.name} with their API key <input name="key" type="password" autocomplete="off" required />
            </label>{' '}
            <button type="submit">Sign in</button>
          </form>
        )}
      </section>
      <section class="card" id="feed">
        <h2>Feed</h2>
        {feed.partial && (
          <p class="flash bad" role="alert" id="partial">
            Some posts may be missing: shard node(s) {feed.missingNodes.join(', ')} did not answer.
          </p>
        )}
        {profile.follows.communities === 0 ? (
          <p class="muted">Follows no communities yet.</p>
        ) : (
          <PostList
            posts={feed.posts}
            showCommunity
            stream={props.live ? `/api/stream?user=${encodeURIComponent(profile.name)}` : undefined}
          />
        )}
        <OlderLink href={feed.next ? `${path}?before=${encodeURIComponent(feed.next)}&limit=${props.limit}` : undefined} />
      </section>
      <section class="card" id="activities">
        <h2>Activities</h2>
        <ActivityList activities={props.activities} />
        {props.olderActivities && (
          <div class="pager">
            <a id="older-activities" href={`${path}?${props.olderActivities}`}>
              Older activities →
            </a>
          </div>
        )}
      </section>
    </>
  );
}
