/** @jsxImportSource hono/jsx */
// `/c/<name@host>/remove`: asks before a community stops being tracked and its posts are deleted.
import type { CommunityJson } from '../../presenters.js';
import { communityPath } from '../components.js';

export function ConfirmRemovePage({ community }: { community: CommunityJson }) {
  return (
    <>
      <h1>Remove {community.title ?? community.name}?</h1>
      <section class="card">
        <p>
          This stops tracking <strong>{community.ref}</strong>: its workflow is cancelled and the posts stored for it are deleted.
        </p>
        <div class="actions">
          <form method="post" action={`${communityPath(community.ref)}/remove`}>
            <button class="danger" type="submit">
              Yes, remove it
            </button>
          </form>
          <a class="button" href="/">
            Cancel
          </a>
        </div>
      </section>
    </>
  );
}
