// Shared by the browser tests in this folder (dashboard.test.mjs, accounts_board.test.mjs), each run by
// its GoogleTest driver under node with one JSON argument: how Chromium is started here, waiting for a
// condition with a deadline (nothing sleeps), screenshots into the artifacts directory, axe-core, and a
// watch on every request and error of a browser context.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const started = Date.now();

export const log = (message) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);

// Chromium as TOOLCHAIN.md says it must run here: no sandbox as root, and none of its background
// connections to outside hosts. Playwright adds a fresh temporary --user-data-dir of its own.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium(executablePath) {
  if (!fs.existsSync(executablePath)) {
    throw new Error(`no Chromium at ${executablePath}: install it with scripts/install-deps.sh --browser`);
  }
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
}

// Runs `body(browser)` with a Chromium of its own, closed afterwards whatever happens; when the body
// throws, the page `failurePage()` names (if any) is photographed as "failure" first.
export async function withBrowser(executablePath, screenshot, failurePage, body) {
  const browser = await launchChromium(executablePath);
  try {
    await body(browser);
  } catch (e) {
    const page = failurePage();
    if (page) await screenshot(page, 'failure').catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
}

// A test script's last word: PASS, or FAIL with the reason and exit code 1.
export async function runMain(what, main) {
  try {
    await main();
    log(`PASS: every ${what} check passed`);
  } catch (e) {
    console.error(`FAIL: ${e.stack ?? e}`);
    process.exitCode = 1;
  }
}

// Re-runs `check` (which throws while its condition does not hold) until it passes or `timeoutMs`
// passes; then fails with the last reason.
export async function eventually(what, check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const error = new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${last?.message ?? last}`);
      error.cause = last;
      throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100)); // the polling interval, not a synchronisation
  }
}

// Numbered screenshots in `dir`, which holds only this run's: an old failure.png next to a passing
// run would mislead.
export function screenshots(dir) {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.png')) fs.rmSync(path.join(dir, f));
  log(`screenshots go to ${dir}`);
  let index = 0;
  return async (page, name) => {
    const file = path.join(dir, `${String(++index).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    log(`screenshot ${file}`);
    return file;
  };
}

// WCAG 2.1 A and AA violations on the page, as readable lines.
export async function axeViolations(page) {
  // Evaluated over the DevTools protocol: a <script> tag would be (rightly) refused by the page's CSP.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }, resultTypes: ['violations'] }),
  );
  const checked = result.passes.length + result.violations.length + result.incomplete.length;
  assert.ok(result.passes.some((r) => r.id === 'color-contrast'), 'axe-core checked colour contrast');
  log(`axe-core: ${checked} rules applied, ${result.violations.length} violated`);
  return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

// Collects what must stay empty in a test: requests to any host but `home`, uncaught page errors and
// (unless a page is watched with { console: false }) console errors but those `ignoreConsole` expects.
export function watcher({ ignoreConsole = () => false } = {}) {
  const found = { outside: [], pageErrors: [], consoleErrors: [] };
  return {
    found,
    context(context, home) {
      context.on('request', (request) => {
        const u = new URL(request.url());
        if (/^(https?|wss?):$/.test(u.protocol) && u.origin !== new URL(home).origin) found.outside.push(request.url());
      });
    },
    page(page, { console: watchConsole = true } = {}) {
      page.on('pageerror', (e) => found.pageErrors.push(e.message));
      page.on('console', (m) => {
        if (watchConsole && m.type() === 'error' && !ignoreConsole(m)) found.consoleErrors.push(m.text());
      });
    },
  };
}

// Whether a page fits its viewport's width (no sideways scrolling) and its background colour.
export async function pageLayout(page) {
  const layout = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    width: window.innerWidth,
    background: getComputedStyle(document.body).backgroundColor,
  }));
  const [r, g, b] = layout.background.match(/\d+/g).map(Number);
  return { ...layout, fits: layout.scrollWidth <= layout.width, dark: r + g + b < 120 };
}
