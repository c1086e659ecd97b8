/** @jsxImportSource hono/jsx */
// The website's user pages: `/u/:name`, the user's feed and activities; signing in with the
// user's API key (kept in an HttpOnly, SameSite=Strict cookie) lets the follow buttons of
// community pages change that user's follows. Plain forms: everything works without JavaScript.
import { Hono, type Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { ApiError } from '../errors.js';
import type { Services } from '../service.js';
import { parsePageQuery } from '../validation.js';
import {
  activitiesPage,
  feedOf,
  parseActivityQuery,
  requireUser,
  signedInUser,
  startFollowingCommunity,
  stopFollowingCommunity,
  userProfile,
  userWithKey,
} from '../users.js';
import { localPath } from './components.js';
import { UserPage } from './pages/user.js';
import { renderErrorPage } from './pages/error.js';

export const USER_COOKIE = 'lemmy_fetcher_user';

/** The user signed in on this browser, if any (and if the key still is theirs). */
export function viewerOf(s: Services, c: Context) {
  return signedInUser(s, getCookie(c, USER_COOKIE));
}

export function userWebRoutes(s: Services, opts: { isTls?: (c: Context) => boolean } = {}): Hono {
  const app = new Hono();

  const fail = (c: Context, err: unknown) => {
    if (!(err instanceof ApiError) || err.status >= 500) throw err;
    return renderErrorPage(c, err.status, err.status === 404 ? 'There is no such user or community.' : err.message);
  };

  app.post('/u/:name/signin', async (c) => {
    const raw = await c.req.parseBody();
    try {
      const user = await userWithKey(s, c.req.param('name'), typeof raw.key === 'string' ? raw.key : undefined);
      const key = String(raw.key).trim();
      setCookie(c, USER_COOKIE, `${user.name}:${key}`, { httpOnly: true, sameSite: 'Strict', path: '/', secure: opts.isTls?.(c) ?? false });
      return c.redirect(localPath(raw.next) === '/' ? `/u/${user.name}` : localPath(raw.next), 303);
    } catch (err) {
      return fail(c, err);
    }
  });

  app.post('/u/:name/signout', (c) => {
    deleteCookie(c, USER_COOKIE, { path: '/' });
    return c.redirect(`/u/${encodeURIComponent(c.req.param('name'))}`, 303);
  });

  // A follow button: only for the user signed in on this browser.
  app.post('/u/:name/follows', async (c) => {
    const raw = await c.req.parseBody();
    try {
      const viewer = await viewerOf(s, c);
      const name = c.req.param('name');
      if (!viewer) throw new ApiError(401, 'unauthorized', `Sign in as ${name} (with ${name}'s API key) to follow communities.`);
      if (viewer.name !== name) throw new ApiError(403, 'forbidden', `You are signed in as ${viewer.name}, not ${name}.`);
      const ref = typeof raw.community === 'string' ? raw.community : '';
      if (raw.action === 'unfollow') await stopFollowingCommunity(s, name, ref);
      else await startFollowingCommunity(s, name, ref);
      return c.redirect(localPath(raw.back), 303);
    } catch (err) {
      return fail(c, err);
    }
  });

  app.get('/u/:name', async (c) => {
    try {
      const page = parsePageQuery({ limit: c.req.query('limit'), before: c.req.query('before') });
      const activityQuery = parseActivityQuery({ before: c.req.query('activities_before') });
      const user = await requireUser(s, c.req.param('name'));
      const [profile, feed, activities, viewer] = await Promise.all([
        userProfile(s, user),
        feedOf(s, user, page),
        activitiesPage(s, user, activityQuery),
        viewerOf(s, c),
      ]);
      const older = activities.next ? new URLSearchParams({ activities_before: activities.next }).toString() : null;
      return c.render(
        <UserPage
          profile={profile}
          feed={feed}
          activities={activities.activities}
          olderActivities={older}
          limit={page.limit}
          live={!page.before}
          signedIn={viewer?.name === user.name}
        />,
        { title: profile.name },
      );
    } catch (err) {
      // Answered here, so the page works mounted anywhere (the app's error handler may not be in front).
      if (!(err instanceof ApiError) || err.status >= 500) throw err;
      return renderErrorPage(c, err.status, err.status === 404 ? 'There is no such user.' : err.message);
    }
  });

  return app;
}
