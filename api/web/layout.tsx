/** @jsxImportSource hono/jsx */
// The page frame, installed with Hono's jsxRenderer: every website route renders its page with
// `c.render(<Page …/>, { title })` and gets the doctype, head (one same-origin stylesheet, and one
// same-origin script that only enhances: live posts) and the top bar around it.
import type { Child } from 'hono/jsx';
import { jsxRenderer } from 'hono/jsx-renderer';
import type { ApiDeps } from '../deps.js';
import { LIVE_SCRIPT, STYLESHEET } from './assets.js';
import { pageContext, type PageContext } from './components.js';

declare module 'hono' {
  interface ContextRenderer {
    (content: string | Promise<string>, props: { title: string }): Response | Promise<Response>;
  }
}

export function Layout(props: { ctx: PageContext; title: string; children?: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · lemmy-fetcher`}</title>
        <link rel="stylesheet" href={STYLESHEET} />
        <script src={LIVE_SCRIPT} defer></script>
      </head>
      <body>
        <header class="top">
          <a href="/">lemmy-fetcher</a>
          <nav>
            <a href="/">Communities</a>
            <a href="/posts">Newest posts</a>
            <a href="/admin">Admin</a>
          </nav>
          {props.ctx.tokenRequired &&
            (props.ctx.loggedIn ? (
              <form method="post" action="/logout">
                <button type="submit">Log out</button>
              </form>
            ) : (
              <a href="/login">Log in</a>
            ))}
        </header>
        <main>{props.children}</main>
      </body>
    </html>
  );
}

/** The renderer middleware: the layout around whatever a route passes to c.render. */
export function pageRenderer(deps: Pick<ApiDeps, 'config'>) {
  return jsxRenderer(({ children, title }, c) => (
    <Layout ctx={pageContext(deps, c)} title={title}>
      {children}
    </Layout>
  ));
}
