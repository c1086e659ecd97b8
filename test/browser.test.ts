// A real browser (playwright-core + Debian's chromium) against a real server on a free port:
// add a community through the form, see it listed, see its posts after the sync, refresh it,
// remove it (with the confirmation page). A screenshot goes to test-artifacts/.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiDeps } from '../api/server.js';
import { communityByRef, listCommunities } from '../src/db/communities.js';
import { createLogger } from '../src/log.js';
import { requestRefresh, stopTracking } from '../src/tracking.js';
import { haveChromium as haveChromiumFor, launchChromium } from './support/browser.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack, queryStatus } from './support/stack.js';

const haveChromium = haveChromiumFor('browser.test.ts');

const ARTIFACTS = path.resolve('test-artifacts');

describe.skipIf(!haveChromium)('website in a real browser', () => {
  let stack: Stack;
  let fake: FakeLemmy;
  let deps: ApiDeps;
  let server: { close(): Promise<void>; port: number };
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    [stack, fake, browser] = await Promise.all([createStack(), FakeLemmy.start({ siteName: 'Browser Lemmy' }), launchChromium()]);
    deps = {
      config: { ...stack.config, PORT: 0, HOST: '127.0.0.1' },
      catalog: stack.storage.catalog,
      router: stack.storage.router,
      temporal: stack.client,
      log: createLogger({ level: 'silent' }),
    };
    server = await startApiServer(deps);
    expect(server.port).toBeGreaterThan(0);
    base = `http://127.0.0.1:${server.port}`;
    fake.addCommunity('gardening', { title: 'Gardening <em>& plants</em>', description: 'grow things', subscribers: 1234 });
    fake.addPosts('gardening', 6, (i) => ({ title: `Tomatoes ${i} <script>window.pwned=1</script>` }));
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (stack) {
      for (const row of await listCommunities(stack.storage.catalog).catch(() => [])) await stopTracking(deps, row).catch(() => {});
      await stack.stop();
    }
    await fake?.close();
  });

  it('adds, lists, shows posts, refreshes and removes a community', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const ref = `gardening@${fake.hostPort}`;
    try {
      await page.goto(`${base}/`);
      expect(await page.locator('#empty').isVisible()).toBe(true);

      // the stylesheet applies: its font stack (quoted "Segoe UI") and colours reach the page
      const style = await page.evaluate(() => {
        const body = getComputedStyle(document.body);
        const header = getComputedStyle(document.querySelector('header.top')!);
        return { font: body.fontFamily, background: body.backgroundColor, header: header.backgroundColor, display: header.display };
      });
      expect(style.font).toContain('"Segoe UI"');
      expect(style.font).toMatch(/^system-ui/);
      expect(style.background).toBe('rgb(245, 246, 248)');
      expect(style.header).toBe('rgb(29, 35, 48)');
      expect(style.display).toBe('flex');
      await page.screenshot({ path: path.join(ARTIFACTS, 'browser-empty.png'), fullPage: true });

      // a bad submission shows an inline error and keeps the form
      await page.fill('input[name=instance]', 'ftp://nowhere.example');
      await page.fill('input[name=name]', 'gardening');
      await page.click('button[type=submit]:has-text("Track")');
      await expect.poll(() => page.locator('#instance-error').textContent()).toContain('http(s)');

      await page.fill('input[name=instance]', fake.url);
      await page.fill('input[name=name]', 'Gardening');
      await page.fill('input[name=refreshSeconds]', '600');
      await page.click('button[type=submit]:has-text("Track")');
      await page.waitForURL(/flash=added/);
      expect(await page.locator('.flash').textContent()).toContain(`Now tracking ${ref}`);
      const row = page.locator(`tr[data-ref="${ref}"]`);
      expect(await row.count()).toBe(1);

      // after the first sync the row shows the metadata and the posts stored
      await eventually(
        async () => {
          await page.reload();
          const text = (await row.textContent()) ?? '';
          return (
            text.includes('Gardening <em>& plants</em>') &&
            text.includes('1234') &&
            /waiting/.test(text) &&
            (await row.locator('td[data-label="Posts stored"]').textContent()) === '6'
          );
        },
        30_000,
        500,
      );
      expect(await row.locator('a[href*="/namespaces/default/workflows/"]').getAttribute('href')).toContain(
        encodeURIComponent(`community:${ref}`),
      );

      await page.screenshot({ path: path.join(ARTIFACTS, 'browser-home.png'), fullPage: true });

      // the community page lists the posts (escaped: the script in titles never runs)
      await row.locator('a.title').click();
      await page.waitForURL(/\/c\//);
      expect(await page.locator('li[data-post-id]').count()).toBe(6);
      expect(await page.locator('li[data-post-id] .title').first().textContent()).toContain('<script>window.pwned=1</script>');
      expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
      expect(await page.locator('li[data-post-id] .title a').first().getAttribute('href')).toMatch(new RegExp(`^${fake.url}/post/\\d+$`));
      await page.screenshot({ path: path.join(ARTIFACTS, 'browser-community.png'), fullPage: true });

      // live: a post synced while the page is open appears without a reload (EventSource, /api/stream)
      await page.locator('ul[data-stream][data-live="open"]').waitFor({ timeout: 10_000 });
      fake.addPosts('gardening', 1, () => ({ title: 'Live one' }));
      await requestRefresh(deps, (await communityByRef(deps.catalog, ref))!);
      await page.locator('li[data-post-id] .title', { hasText: 'Live one' }).waitFor({ timeout: 20_000 });
      expect(await page.locator('li[data-post-id]').count()).toBe(7);
      expect(await page.locator('li[data-post-id] .title').first().textContent()).toContain('Live one');

      // refresh now: new posts arrive
      fake.addPosts('gardening', 2, (i) => ({ title: `Fresh ${i}` }));
      const syncsBefore = (await queryStatus(deps, ref))!.syncs;
      await page.click('button:has-text("Refresh now")');
      await page.waitForURL(/flash=refreshing/);
      expect(await page.locator('.flash').textContent()).toContain(`Refresh of ${ref} requested`);
      await eventually(async () => ((await queryStatus(deps, ref))?.syncs ?? 0) > syncsBefore, 20_000);
      await page.reload();
      expect(await page.locator('li[data-post-id]').count()).toBe(9);
      expect(await page.locator('li[data-post-id] .title').first().textContent()).toContain('Fresh');

      // remove: confirmation page first, then gone
      await page.click('a:has-text("Remove")');
      await page.waitForURL(/\/remove$/);
      expect(await page.locator('h1').textContent()).toContain('Remove');
      await page.click('button:has-text("Yes, remove it")');
      await page.waitForURL(/flash=removed/);
      expect(await page.locator(`tr[data-ref="${ref}"]`).count()).toBe(0);
      expect(await page.locator('#empty').isVisible()).toBe(true);
      await page.screenshot({ path: path.join(ARTIFACTS, 'browser-removed.png'), fullPage: true });
    } catch (err) {
      await page.screenshot({ path: path.join(ARTIFACTS, 'browser-failure.png'), fullPage: true }).catch(() => {});
      throw err;
    } finally {
      await page.close();
    }
  });
});
