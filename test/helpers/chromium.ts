// Debian's chromium, driven by playwright-core, for browser tests: never a downloaded browser.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium } from 'playwright-core';
import type { TeardownHost } from './redis-server.js';

const CHROMIUM = '/usr/bin/chromium';
/** The flags that keep Chromium off the network and quiet on this machine (shared/NOTES.md). */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Debian's chromium is not installed at ${CHROMIUM}: run \`apt-get install -y chromium\` (.ci/run installs it when missing)`);
  }
}

/** A headless Chromium, closed at teardown; `extraArgs` add to the quiet, offline flags. Throws, saying how to install it, when it is missing. */
export async function launchBrowser(t: TeardownHost, extraArgs: readonly string[] = []): Promise<Browser> {
  requireChromium();
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
  t.teardown(() => browser.close());
  return browser;
}

/** A headless Chromium with a profile of its own, closed and removed at teardown. */
export async function launchChromium(t: TeardownHost, options: { viewport?: { width: number; height: number } } = {}): Promise<BrowserContext> {
  requireChromium();
  const userDataDir = await mkdtemp(join(tmpdir(), 'switchboard-chromium-'));
  t.teardown(() => rm(userDataDir, { recursive: true, force: true }));
  const browser = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, ...options });
  t.teardown(() => browser.close());
  return browser;
}
