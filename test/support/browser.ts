// Debian's chromium through playwright-core, started the one way the tests use it: headless, no
// sandbox (root), no GPU, and nothing fetched in the background (every request must stay on loopback).
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Whether the browser is installed; in CI its absence is an error (`.ci/run` installs it). */
export function haveChromium(file: string): boolean {
  const have = existsSync(CHROMIUM);
  if (!have && process.env.CI) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (apt-get install -y chromium)`);
  if (!have) console.warn(`[${file}] browser tests skipped: ${CHROMIUM} not found (apt-get install -y chromium); they always run in CI`);
  return have;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
