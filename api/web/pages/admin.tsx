/** @jsxImportSource hono/jsx */
// `/admin`: runtime configuration. Communities that need attention (failing, not found, dormant,
// paused) with their last error and actions (pause/resume, refresh, interval); each host's request
// budget with its override; the shard nodes, a form to add one and the rebalance button. Plain
// forms (POST, then a redirect back here), so it works without JavaScript.
import type { NodeStatus } from '../../../src/db/sharding/moves.js';
import type { CommunityJson } from '../../presenters.js';
import { communityPath, Flash, StateBadge, Time, type PageContext } from '../components.js';

export interface AdminCommunity extends CommunityJson {
  pausedAt: string | null;
}

export interface AdminInstance {
  host: string;
  requestsPerSecond: number;
  override: number | null;
  communities: number;
  nextSlotAt: string | null;
  lastOkAt: string | null;
  lastFailureAt: string | null;
}

export type AdminFilter = 'failing' | 'paused' | 'all';

export interface AdminPageProps {
  ctx: PageContext;
  filter: AdminFilter;
  communities: AdminCommunity[];
  next: string | null;
  defaultRequestsPerSecond: number;
  instances: AdminInstance[];
  /** Null when the shard nodes could not be listed (the message says why). */
  shards: { logicalShards: number; nodes: NodeStatus[] } | { error: string };
  flash?: string;
  /** A form that was refused: shown at the top (and the status is 4xx). */
  error?: string;
}

const FILTERS: { value: AdminFilter; label: string }[] = [
  { value: 'failing', label: 'Needs attention' },
  { value: 'paused', label: 'Paused' },
  { value: 'all', label: 'All' },
];

const back = (filter: AdminFilter) => `/admin${filter === 'failing' ? '' : `?state=${filter}`}`;

function CommunityActions({ community, filter }: { community: AdminCommunity; filter: AdminFilter }) {
  const base = `/admin/communities/${encodeURIComponent(community.ref)}`;
  const paused = community.pausedAt !== null;
  return (
    <div class="actions">
      <form method="post" action={`${base}/${paused ? 'resume' : 'pause'}`}>
        <input type="hidden" name="back" value={back(filter)} />
        <button type="submit" aria-label={`${paused ? 'Resume' : 'Pause'} ${community.ref}`}>
          {paused ? 'Resume' : 'Pause'}
        </button>
      </form>
      {!paused && (
        <form method="post" action={`${base}/refresh`}>
          <input type="hidden" name="back" value={back(filter)} />
          <button type="submit" aria-label={`Refresh ${community.ref} now`}>
            Refresh now
          </button>
        </form>
      )}
      <form method="post" action={`${base}/interval`} class="inline">
        <input type="hidden" name="back" value={back(filter)} />
        <label>
          Every
          <input
            name="refreshSeconds"
            type="number"
            min="1"
            max="86400"
            step="1"
            required
            value={String(community.refreshPolicy === 'fixed' ? community.refreshSeconds : '')}
            placeholder={String(community.refreshSeconds)}
            aria-label={`Refresh interval of ${community.ref} in seconds`}
          />
          s
        </label>
        <button type="submit">Set interval</button>
      </form>
    </div>
  );
}

function Communities(props: AdminPageProps) {
  const { communities, filter } = props;
  return (
    <section class="card" id="communities">
      <h2>Communities</h2>
      <nav class="filters">
        {FILTERS.map((f) =>
          f.value === filter ? (
            <strong aria-current="page">{f.label}</strong>
          ) : (
            <a href={back(f.value)} id={`filter-${f.value}`}>
              {f.label}
            </a>
          ),
        )}
      </nav>
      {communities.length === 0 ? (
        <p class="muted" id="no-communities">
          {filter === 'failing'
            ? 'Nothing needs attention: no community is failing, not found, dormant or paused.'
            : filter === 'paused'
              ? 'No community is paused.'
              : 'No community is tracked.'}
        </p>
      ) : (
        <table class="communities admin">
          <thead>
            <tr>
              <th>Community</th>
              <th>State</th>
              <th>Last error</th>
              <th>Last sync</th>
              <th>Next sync</th>
              <th>Interval</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {communities.map((c) => (
              <tr data-ref={c.ref}>
                <td>
                  <a href={communityPath(c.ref)} class="title">
                    {c.title ?? c.name}
                  </a>
                  <div class="ref">{c.ref}</div>
                </td>
                <td data-label="State">
                  <StateBadge state={c.status.state} />
                  {c.pausedAt && (
                    <div class="muted">
                      since <Time iso={c.pausedAt} />
                    </div>
                  )}
                </td>
                <td data-label="Last error" class="error">
                  {c.status.lastError ? (
                    <>
                      <code>{c.status.lastError.code}</code>: {c.status.lastError.message}{' '}
                      {c.status.lastError.at && (
                        <span class="muted">
                          (<Time iso={c.status.lastError.at} />)
                        </span>
                      )}
                    </>
                  ) : (
                    ''
                  )}
                </td>
                <td data-label="Last sync">
                  <Time iso={c.status.lastSyncAt} />
                </td>
                <td data-label="Next sync">
                  <Time iso={c.status.nextSyncAt} future />
                </td>
                <td data-label="Interval">
                  {c.refreshSeconds} s<div class="muted">{c.status.reason}</div>
                </td>
                <td>
                  <CommunityActions community={c} filter={filter} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {props.next && (
        <div class="pager">
          <a id="more" href={`/admin?state=${filter}&before=${encodeURIComponent(props.next)}`}>
            More →
          </a>
        </div>
      )}
    </section>
  );
}

function Instances({ instances, defaultRequestsPerSecond }: AdminPageProps) {
  return (
    <section class="card" id="instances">
      <h2>Request budget per instance</h2>
      <p class="muted">
        Every worker together sends at most this many requests per second to a host. The default is {defaultRequestsPerSecond}{' '}
        (INSTANCE_REQUESTS_PER_SECOND); a host's own rate applies from the next request on.
      </p>
      {instances.length > 0 && (
        <table class="instances">
          <thead>
            <tr>
              <th>Host</th>
              <th>Sources</th>
              <th>Requests/s</th>
              <th>Last answer</th>
              <th>Own rate</th>
            </tr>
          </thead>
          <tbody>
            {instances.map((i) => (
              <tr data-host={i.host}>
                <td>{i.host}</td>
                <td class="num" data-label="Sources">
                  {i.communities}
                </td>
                <td class="num" data-label="Requests/s">
                  {i.requestsPerSecond}
                  {i.override === null && <span class="muted"> (default)</span>}
                </td>
                <td data-label="Last answer">
                  <Time iso={i.lastOkAt} />
                  {i.lastFailureAt && (
                    <div class="muted">
                      unreachable <Time iso={i.lastFailureAt} />
                    </div>
                  )}
                </td>
                <td>
                  <div class="actions">
                    <form method="post" action="/admin/instances/budget" class="inline">
                      <input type="hidden" name="host" value={i.host} />
                      <input
                        name="requestsPerSecond"
                        type="number"
                        min="0.01"
                        max="1000"
                        step="any"
                        required
                        value={i.override === null ? '' : String(i.override)}
                        aria-label={`Requests per second to ${i.host}`}
                      />
                      <button type="submit">Set</button>
                    </form>
                    {i.override !== null && (
                      <form method="post" action="/admin/instances/budget/delete">
                        <input type="hidden" name="host" value={i.host} />
                        <button type="submit" aria-label={`Use the default rate for ${i.host}`}>
                          Use default
                        </button>
                      </form>
                    )}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form method="post" action="/admin/instances/budget" class="add" id="budget-form">
        <label>
          Host
          <input name="host" type="text" required placeholder="lemmy.world" />
        </label>
        <label>
          Requests per second
          <input name="requestsPerSecond" type="number" min="0.01" max="1000" step="any" required placeholder="0.5" />
        </label>
        <div>
          <button type="submit">Set the host's rate</button>
        </div>
      </form>
    </section>
  );
}

function Shards({ shards }: AdminPageProps) {
  return (
    <section class="card" id="shards">
      <h2>Shard nodes</h2>
      {'error' in shards ? (
        <p class="error">{shards.error}</p>
      ) : (
        <>
          <p class="muted">{shards.logicalShards} logical shards, mapped to these nodes.</p>
          <table class="shards">
            <thead>
              <tr>
                <th>Node</th>
                <th>URL</th>
                <th>Up</th>
                <th>Shards</th>
                <th>Communities</th>
                <th>Posts</th>
              </tr>
            </thead>
            <tbody>
              {shards.nodes.map((n) => (
                <tr data-node={n.node}>
                  <td>{n.node}</td>
                  <td>
                    <code>{n.url}</code>
                  </td>
                  <td data-label="Up">{n.up ? 'yes' : `no${n.error ? `: ${n.error}` : ''}`}</td>
                  <td class="num" data-label="Shards">
                    {n.shards.length}
                  </td>
                  <td class="num" data-label="Communities">
                    {n.communities}
                  </td>
                  <td class="num" data-label="Posts">
                    {n.posts ?? '—'}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <form method="post" action="/admin/shards/nodes" class="add" id="node-form">
        <label>
          Node name
          <input name="name" type="text" required placeholder="shard3" />
        </label>
        <label>
          Postgres URL
          <input name="url" type="text" required placeholder="postgres://user:password@host:5432/db" autocomplete="off" />
        </label>
        <div>
          <button type="submit">Add node</button>
        </div>
      </form>
      <form method="post" action="/admin/shards/rebalance" id="rebalance-form">
        <button type="submit">Rebalance shards</button>
      </form>
    </section>
  );
}

export function AdminPage(props: AdminPageProps) {
  return (
    <>
      <h1>Admin</h1>
      <Flash message={props.flash} />
      {props.error && (
        <p class="error" role="alert" id="admin-error">
          {props.error}
        </p>
      )}
      <Communities {...props} />
      <Instances {...props} />
      <Shards {...props} />
    </>
  );
}
