/** @jsxImportSource hono/jsx */
// Server-rendered pages (Hono JSX escapes every interpolated value; nothing from Lemmy is ever
// inserted raw). Inline CSS only: the pages work offline and without JavaScript.
import type { Child } from 'hono/jsx';
import type { CommunityJson, PostJson } from '../presenters.js';

export interface PageContext {
  temporalUiUrl: string;
  namespace: string;
  tokenRequired: boolean;
  loggedIn: boolean;
}

const CSS = `
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Ubuntu,sans-serif;color:#1d2330;background:#f5f6f8}
a{color:#2456c7}
header.top{background:#1d2330;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
header.top a{color:#fff;text-decoration:none;font-weight:600}
header.top nav{display:flex;gap:1rem;flex:1}
header.top form{margin:0}
main{max-width:1200px;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.5rem 0 1rem}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:1rem;margin-bottom:1rem}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid #eceef2;vertical-align:top}
th{font-size:.8rem;text-transform:uppercase;letter-spacing:.03em;color:#5b6475}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.icon{width:32px;height:32px;border-radius:6px;object-fit:cover;background:#eceef2}
.ref{color:#5b6475;font-size:.85rem;word-break:break-all}
.state{display:inline-block;padding:0 .45rem;border-radius:999px;font-size:.8rem;background:#eceef2}
.state-waiting{background:#dff3e4;color:#17632d}.state-syncing{background:#dde8fb;color:#1f4fa8}
.state-failing,.state-not_found{background:#fbe1e1;color:#9b1c1c}.state-unknown,.state-stopped{background:#f3ecd8;color:#6b5413}
.error{color:#9b1c1c}
.muted{color:#5b6475;font-size:.85rem}
.actions{display:flex;gap:.4rem;flex-wrap:wrap}
.actions form{margin:0}
button,.button{font:inherit;padding:.3rem .7rem;border-radius:6px;border:1px solid #b9c0cc;background:#fff;color:#1d2330;cursor:pointer;text-decoration:none;display:inline-block}
button.primary{background:#2456c7;border-color:#2456c7;color:#fff}
button.danger{background:#b42323;border-color:#b42323;color:#fff}
form.add{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:.7rem;align-items:end}
label{display:flex;flex-direction:column;font-size:.85rem;color:#3a4252;gap:.2rem}
input{font:inherit;padding:.35rem .5rem;border:1px solid #b9c0cc;border-radius:6px;min-width:0}
input[aria-invalid=true]{border-color:#b42323}
.field-error{color:#9b1c1c;font-size:.8rem}
.flash{padding:.6rem 1rem;border-radius:6px;background:#dff3e4;color:#17632d;margin-bottom:1rem}
.flash.bad{background:#fbe1e1;color:#9b1c1c}
ul.posts{list-style:none;margin:0;padding:0}
ul.posts li{padding:.6rem 0;border-bottom:1px solid #eceef2}
ul.posts .title{font-weight:600;word-break:break-word}
.pager{margin-top:1rem;display:flex;gap:1rem}
@media (max-width:760px){
  table.communities thead{display:none}
  table.communities tr{display:block;border-bottom:1px solid #dde1e8;padding:.5rem 0}
  table.communities td{display:block;border:0;padding:.15rem .25rem}
  table.communities td.num{text-align:left}
  table.communities td[data-label]::before{content:attr(data-label) ": ";color:#5b6475;font-size:.8rem}
}
`;

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

function Time({ iso, future }: { iso: string | null; future?: boolean }) {
  if (!iso) return <span class="muted">—</span>;
  const ms = Date.parse(iso);
  const secs = Math.round((future ? ms - Date.now() : Date.now() - ms) / 1000);
  let rel: string;
  if (future && secs <= 0) rel = 'due now';
  else {
    const a = Math.abs(secs);
    const span = a < 60 ? `${a}s` : a < 3600 ? `${Math.floor(a / 60)}m` : a < 86_400 ? `${Math.floor(a / 3600)}h` : `${Math.floor(a / 86_400)}d`;
    rel = future ? `in ${span}` : `${span} ago`;
  }
  return <time datetime={iso} title={iso}>{rel}</time>;
}

export function Layout(props: { ctx: PageContext; title: string; children?: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · lemmy-fetcher`}</title>
        <style>{CSS}</style>
      </head>
      <body>
        <header class="top">
          <a href="/">lemmy-fetcher</a>
          <nav>
            <a href="/">Communities</a>
            <a href="/posts">Newest posts</a>
          </nav>
          {props.ctx.tokenRequired &&
            (props.ctx.loggedIn ? (
              <form method="post" action="/logout"><button type="submit">Log out</button></form>
            ) : (
              <a href="/login">Log in</a>
            ))}
        </header>
        <main>{props.children}</main>
      </body>
    </html>
  );
}

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
      {err && <span class="field-error" id={`${props.name}-error`}>{err}</span>}
    </label>
  );
}

function AddForm({ form }: { form: AddFormState }) {
  return (
    <section class="card" id="add">
      <h2 style="margin-top:0;font-size:1.1rem">Track a community</h2>
      {form.general && <p class="error" role="alert" id="add-error">{form.general}</p>}
      <form class="add" method="post" action="/communities">
        <Field label="Community (name@host)" name="community" form={form} placeholder="technology@lemmy.world" />
        <Field label="…or instance URL" name="instance" form={form} placeholder="https://lemmy.world" />
        <Field label="and community name" name="name" form={form} placeholder="technology" />
        <Field label="Refresh every (seconds)" name="refreshSeconds" form={form} placeholder="300" type="number" />
        <div><button class="primary" type="submit">Track</button></div>
      </form>
    </section>
  );
}

function RefreshButton({ c, back }: { c: CommunityJson; back: string }) {
  return (
    <form method="post" action={`${communityPath(c.ref)}/refresh`}>
      <input type="hidden" name="back" value={back} />
      <button type="submit" aria-label={`Refresh ${c.ref} now`}>Refresh now</button>
    </form>
  );
}

export function HomePage(props: { ctx: PageContext; communities: CommunityJson[]; form: AddFormState; flash?: string }) {
  const { ctx, communities } = props;
  return (
    <Layout ctx={ctx} title="Communities">
      <h1>Tracked communities</h1>
      {props.flash && <p class="flash" role="status">{props.flash}</p>}
      <AddForm form={props.form} />
      <section class="card">
        {communities.length === 0 ? (
          <p class="muted" id="empty">No community is tracked yet. Add one above.</p>
        ) : (
          <table class="communities">
            <thead>
              <tr>
                <th></th><th>Community</th><th>Subscribers</th><th>Posts stored</th><th>State</th><th>Last sync</th><th>Next sync</th><th>Last error</th><th></th>
              </tr>
            </thead>
            <tbody>
              {communities.map((c) => {
                const icon = safeUrl(c.icon);
                return (
                  <tr data-ref={c.ref}>
                    <td>{icon ? <img class="icon" src={icon} alt="" loading="lazy" referrerpolicy="no-referrer" /> : <span class="icon" style="display:inline-block" />}</td>
                    <td>
                      <a href={communityPath(c.ref)} class="title">{c.title ?? c.name}</a>
                      <div class="ref">{c.ref}</div>
                    </td>
                    <td class="num" data-label="Subscribers">{c.subscribers ?? '—'}</td>
                    <td class="num" data-label="Posts stored">{c.postsStored ?? '—'}</td>
                    <td data-label="State"><span class={`state state-${c.status.state}`}>{c.status.state}</span></td>
                    <td data-label="Last sync"><Time iso={c.status.lastSyncAt} /></td>
                    <td data-label="Next sync"><Time iso={c.status.nextSyncAt} future /></td>
                    <td data-label="Last error" class="error">{c.status.lastError ? `${c.status.lastError.code}: ${c.status.lastError.message}` : ''}</td>
                    <td>
                      <div class="actions">
                        <RefreshButton c={c} back="/" />
                        <a class="button" href={`${communityPath(c.ref)}/remove`}>Remove</a>
                        <a class="button" href={workflowUrl(ctx, c.workflowId)} target="_blank" rel="noopener noreferrer">Workflow</a>
                      </div>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </section>
    </Layout>
  );
}

function PostList({ posts, showCommunity }: { posts: PostJson[]; showCommunity?: boolean }) {
  if (posts.length === 0) return <p class="muted">No posts stored yet.</p>;
  return (
    <ul class="posts">
      {posts.map((p) => {
        const original = safeUrl(p.apId);
        const link = safeUrl(p.url);
        return (
          <li data-post-id={p.id}>
            <div class="title">{original ? <a href={original} rel="noopener noreferrer nofollow">{p.title}</a> : p.title}</div>
            <div class="muted">
              {showCommunity && p.communityRef && <><a href={communityPath(p.communityRef)}>{p.communityRef}</a>{' · '}</>}
              {p.author ?? 'unknown'} · <Time iso={p.published} /> · {p.score} points · {p.comments} comments
              {p.nsfw && ' · NSFW'}
              {link && <>{' · '}<a href={link} rel="noopener noreferrer nofollow">{new URL(link).host}</a></>}
            </div>
            {p.body && <div class="muted">{p.body.length > 280 ? `${p.body.slice(0, 280)}…` : p.body}</div>}
          </li>
        );
      })}
    </ul>
  );
}

export function CommunityPage(props: { ctx: PageContext; c: CommunityJson; posts: PostJson[]; next: string | null; flash?: string; limit: number }) {
  const { c, ctx } = props;
  const icon = safeUrl(c.icon);
  return (
    <Layout ctx={ctx} title={c.title ?? c.ref}>
      <h1 style="display:flex;gap:.6rem;align-items:center">
        {icon && <img class="icon" src={icon} alt="" referrerpolicy="no-referrer" />}
        <span>{c.title ?? c.name}</span>
      </h1>
      {props.flash && <p class="flash" role="status">{props.flash}</p>}
      <section class="card">
        <p class="ref">{c.ref} · {c.subscribers ?? '—'} subscribers · {c.postsStored ?? '—'} posts stored · state <span class={`state state-${c.status.state}`}>{c.status.state}</span> · last sync <Time iso={c.status.lastSyncAt} /> · next sync <Time iso={c.status.nextSyncAt} future /> · every {c.refreshSeconds}s</p>
        {c.status.lastError && <p class="error">{c.status.lastError.code}: {c.status.lastError.message}</p>}
        {c.description && <p class="muted" style="white-space:pre-wrap">{c.description.length > 600 ? `${c.description.slice(0, 600)}…` : c.description}</p>}
        <div class="actions">
          <RefreshButton c={c} back={communityPath(c.ref)} />
          <a class="button" href={`${communityPath(c.ref)}/remove`}>Remove</a>
          <a class="button" href={workflowUrl(ctx, c.workflowId)} target="_blank" rel="noopener noreferrer">Workflow in Temporal UI</a>
          {safeUrl(c.instance) && <a class="button" href={`${c.instance}/c/${encodeURIComponent(c.name)}`} rel="noopener noreferrer">On {c.host}</a>}
        </div>
      </section>
      <section class="card">
        <PostList posts={props.posts} />
        <div class="pager">
          {props.next && <a id="older" href={`${communityPath(c.ref)}?before=${encodeURIComponent(props.next)}&limit=${props.limit}`}>Older posts →</a>}
        </div>
      </section>
    </Layout>
  );
}

export function PostsPage(props: { ctx: PageContext; posts: PostJson[]; next: string | null; partial: boolean; missingNodes: string[]; limit: number }) {
  return (
    <Layout ctx={props.ctx} title="Newest posts">
      <h1>Newest posts</h1>
      {props.partial && (
        <p class="flash bad" role="alert" id="partial">
          Some posts may be missing: shard node(s) {props.missingNodes.join(', ')} did not answer.
        </p>
      )}
      <section class="card">
        <PostList posts={props.posts} showCommunity />
        <div class="pager">
          {props.next && <a id="older" href={`/posts?before=${encodeURIComponent(props.next)}&limit=${props.limit}`}>Older posts →</a>}
        </div>
      </section>
    </Layout>
  );
}

export function ConfirmRemovePage(props: { ctx: PageContext; c: CommunityJson }) {
  const { c } = props;
  return (
    <Layout ctx={props.ctx} title={`Remove ${c.ref}`}>
      <h1>Remove {c.title ?? c.name}?</h1>
      <section class="card">
        <p>This stops tracking <strong>{c.ref}</strong>: its workflow is cancelled and the posts stored for it are deleted.</p>
        <div class="actions">
          <form method="post" action={`${communityPath(c.ref)}/remove`}>
            <button class="danger" type="submit">Yes, remove it</button>
          </form>
          <a class="button" href="/">Cancel</a>
        </div>
      </section>
    </Layout>
  );
}

export function LoginPage(props: { ctx: PageContext; error?: string; next: string }) {
  return (
    <Layout ctx={props.ctx} title="Log in">
      <h1>Log in</h1>
      <section class="card">
        <p>Changes (add, refresh, remove) need the API token (<code>API_TOKEN</code>). Reading needs none.</p>
        {props.error && <p class="error" role="alert">{props.error}</p>}
        <form method="post" action="/login" class="add">
          <input type="hidden" name="next" value={props.next} />
          <label>API token<input name="token" type="password" autocomplete="current-password" /></label>
          <div><button class="primary" type="submit">Log in</button></div>
        </form>
      </section>
    </Layout>
  );
}

export function ErrorPage(props: { ctx: PageContext; status: number; message: string; login?: boolean }) {
  return (
    <Layout ctx={props.ctx} title={`Error ${props.status}`}>
      <h1>{props.status === 404 ? 'Not found' : `Error ${props.status}`}</h1>
      <section class="card">
        <p class="error" id="error-message">{props.message}</p>
        {props.login && <p><a href="/login">Log in with the API token</a></p>}
        <p><a href="/">Back to the communities</a></p>
      </section>
    </Layout>
  );
}
