/** @jsxImportSource hono/jsx */
// `/login`: the API token form (only meaningful when API_TOKEN is set).
export function LoginPage(props: { error?: string; next: string }) {
  return (
    <>
      <h1>Log in</h1>
      <section class="card">
        <p>
          Changes (add, refresh, remove) need the API token (<code>API_TOKEN</code>). Reading needs none.
        </p>
        {props.error && (
          <p class="error" role="alert" id="login-error">
            {props.error}
          </p>
        )}
        <form method="post" action="/login" class="add">
          <input type="hidden" name="next" value={props.next} />
          <label>
            API token
            <input name="token" type="password" autocomplete="current-password" />
          </label>
          <div>
            <button class="primary" type="submit">
              Log in
            </button>
          </div>
        </form>
      </section>
    </>
  );
}
