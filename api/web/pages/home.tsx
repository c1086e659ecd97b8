/** @jsxImportSource hono/jsx */
// `/`: the tracked communities with their live state and actions, and the form to add one.
import type { CommunityJson } from '../../presenters.js';
import { communityPath, Flash, RefreshButton, safeUrl, StateBadge, Time, workflowUrl, type PageContext } from '../components.js';

export interface AddFormState {
  values: { community?: string; instance?: string; name?: string; refreshSeconds?: string };
  errors: Record<string, string>;
  general?: string;
}

function Field(props: { label: string; name: keyof AddFormState['values']; form: AddFormState; placeholder?: string; type?: string }) {
  const err = props.form.errors[props.name];
  return (
    <label>
      {props.label}
      <input
        name={props.name}
        type={props.type ?? 'text'}
        value={props.form.values[props.name] ?? ''}
        placeholder={props.placeholder}
        aria-invalid={err ? 'true' : undefined}
        aria-describedby={err ? `${props.name}-error` : undefined}
      />
      {err && (
        <span class="field-error" id={`${props.name}-error`}>
          {err}
        </span>
      )}
    </label>
  );
}

function AddForm({ form }: { form: AddFormState }) {
  return (
    <section class="card" id="add">
      <h2>Track a community</h2>
      {form.general && (
        <p class="error" role="alert" id="add-error">
          {form.general}
        </p>
      )}
      <form class="add" method="post" action="/communities">
        <Field label="Community (name@host), or a feed or Mastodon URL" name="community" form={form} placeholder="technology@lemmy.world" />
        <Field label="…or instance URL" name="instance" form={form} placeholder="https://lemmy.world" />
        <Field label="and community name" name="name" form={form} placeholder="technology" />
        <Field label="Refresh every (seconds)" name="refreshSeconds" form={form} placeholder="300" type="number" />
        <div>
          <button class="primary" type="submit">
            Track
          </button>
        </div>
      </form>
    </section>
  );
}

function CommunityRow({ ctx, community }: { ctx: PageContext; community: CommunityJson }) {
  const { status } = community;
  const icon = safeUrl(community.icon);
  return (
    <tr data-ref={community.ref}>
      <td>{icon ? <img class="icon" src={icon} alt="" loading="lazy" referrerpolicy="no-referrer" /> : <span class="icon" />}</td>
      <td>
        <a href={communityPath(community.ref)} class="title">
          {community.title ?? community.name}
        </a>
        <div class="ref">{community.ref}</div>
      </td>
      <td class="num" data-label="Subscribers">
        {community.subscribers ?? '—'}
      </td>
      <td class="num" data-label="Posts stored">
        {community.postsStored ?? '—'}
      </td>
      <td data-label="State">
        <StateBadge state={status.state} />
      </td>
      <td data-label="Last sync">
        <Time iso={status.lastSyncAt} />
      </td>
      <td data-label="Next sync">
        <Time iso={status.nextSyncAt} future />
      </td>
      <td data-label="Last error" class="error">
        {status.lastError ? `${status.lastError.code}: ${status.lastError.message}` : ''}
      </td>
      <td>
        <div class="actions">
          <RefreshButton community={community} back="/" />
          <a class="button" href={`${communityPath(community.ref)}/remove`}>
            Remove
          </a>
          <a class="button" href={workflowUrl(ctx, community.workflowId)} target="_blank" rel="noopener noreferrer">
            Workflow
          </a>
        </div>
      </td>
    </tr>
  );
}

export function HomePage(props: {
  ctx: PageContext;
  communities: CommunityJson[];
  form: AddFormState;
  flash?: string;
  /** Cursor of the next page of communities (the list is paged), if any. */
  next?: string | null;
  limit?: number;
}) {
  const { ctx, communities } = props;
  return (
    <>
      <h1>Tracked communities</h1>
      <Flash message={props.flash} />
      <AddForm form={props.form} />
      <section class="card">
        {communities.length === 0 ? (
          <p class="muted" id="empty">
            No community is tracked yet. Add one above.
          </p>
        ) : (
          <table class="communities">
            <thead>
              <tr>
                <th></th>
                <th>Community</th>
                <th>Subscribers</th>
                <th>Posts stored</th>
                <th>State</th>
                <th>Last sync</th>
                <th>Next sync</th>
                <th>Last error</th>
                <th></th>
              </tr>
            </thead>
            <tbody>
              {communities.map((community) => (
                <CommunityRow ctx={ctx} community={community} />
              ))}
            </tbody>
          </table>
        )}
        {props.next && (
          <div class="pager">
            <a id="more" href={`/?before=${encodeURIComponent(props.next)}${props.limit ? `&limit=${props.limit}` : ''}`}>
              More communities →
            </a>
          </div>
        )}
      </section>
    </>
  );
}
