/** @jsxImportSource hono/jsx */
// The error page: unknown pages (404), bad input (4xx) and failures (5xx) of the website.
import type { Context } from 'hono';

export function ErrorPage(props: { status: number; message: string; login?: boolean }) {
  return (
    <>
      <h1>{props.status === 404 ? 'Not found' : `Error ${props.status}`}</h1>
      <section class="card">
        <p class="error" id="error-message">
          {props.message}
        </p>
        {props.login && (
          <p>
            <a href="/login">Log in with the API token</a>
          </p>
        )}
        <p>
          <a href="/">Back to the communities</a>
        </p>
      </section>
    </>
  );
}

/** Answers with the error page (inside the layout) and the given status. */
export function renderErrorPage(c: Context, status: number, message: string): Response | Promise<Response> {
  c.status(status as Parameters<Context['status']>[0]);
  return c.render(<ErrorPage status={status} message={message} login={status === 401} />, { title: `Error ${status}` });
}
