// End-to-end test of the dashboard in a real browser: Debian's Chromium, driven by playwright-core,
// against a running pool. dashboard_browser_test.cc starts the pool (broker, gateway, workers of every
// tier, some finished work, one task waiting for a provider) and runs this script with one argument, a
// JSON object:
//   { "url": gateway base URL, "chromium": browser path, "artifacts": directory for screenshots,
//     "victim": { "id", "pid" } (a worker to kill), "broker_pid", "gateway_pid",
//     "offline_retention_ms", "expect": { "workers", "by_tier", "failed", "queue_depth", ... } }
// It checks that the page shows what the admin API says, ranks the workers on the contributors board
// with a note that this pool (no database) has no accounts, sorts and filters with the keyboard, turns a
// killed worker red and then drops it, asks for an admin key when the gateway wants one (a second, keyed gateway on the same broker), stays usable
// at phone width and in dark mode with no accessibility violations (axe-core), never talks to another
// host, and says plainly when the broker and then the gateway go away. Every wait is a poll of a page
// or API condition with a deadline; nothing sleeps. Exit code 0 means every check passed.
import assert from 'node:assert/strict';
import { axeViolations, eventually, log, pageLayout, runMain, screenshots, watcher, withBrowser } from './browser_support.mjs';

const config = JSON.parse(process.argv[2] ?? '{}');
const PAGE_URL = `${config.url}/?refresh=0.5`;

// ---- Helpers ----------------------------------------------------------------------------------------

async function api(pathname) {
  const response = await fetch(`${config.url}${pathname}`);
  assert.equal(response.status, 200, `${pathname} answered ${response.status}`);
  return response.json();
}

async function apiSnapshot() {
  const [stats, workers, services] = await Promise.all([api('/api/admin/stats'), api('/api/admin/workers'), api('/api/admin/services')]);
  return { stats, workers: workers.workers, services: services.services };
}

let screenshot; // set in main, once the artifacts directory is known

// Everything the page shows that the test compares, read in one go.
function readPage(page) {
  return page.evaluate(() => {
    const q = (sel, root = document) => root.querySelector(sel);
    const all = (sel, root = document) => [...root.querySelectorAll(sel)];
    const text = (el) => (el ? el.textContent.replace(/\s+/g, ' ').trim() : null);
    const int = (el) => {
      const m = text(el)?.replace(/,/g, '').match(/-?\d+/);
      return m ? Number(m[0]) : null;
    };
    const byTestId = (id) => q(`[data-testid="${id}"]`);
    return {
      connection: byTestId('connection')?.dataset.state ?? null,
      banner: byTestId('banner')?.dataset.state ?? null,
      bannerText: text(byTestId('banner')),
      live: int(byTestId('live-workers')),
      health: { healthy: int(byTestId('health-healthy')), late: int(byTestId('health-late')), offline: int(byTestId('health-offline')) },
      tiers: { 1: int(byTestId('tier-1-live')), 2: int(byTestId('tier-2-live')), 3: int(byTestId('tier-3-live')) },
      queueDepth: int(byTestId('queue-depth')),
      today: { submitted: int(byTestId('today-submitted')), completed: int(byTestId('today-completed')), failed: int(byTestId('today-failed')) },
      workersCount: text(byTestId('workers-count')),
      workers: all('[data-testid="workers-table"] tbody tr').map((tr) => {
        const f = (name) => q(`[data-field="${name}"]`, tr);
        return {
          id: tr.dataset.workerId,
          health: tr.dataset.health,
          name: text(f('name')),
          tier: int(f('tier')),
          simulated: text(f('simulated')),
          services: text(f('services')),
          status: text(f('status')),
          trust: text(f('reputation')),
          inFlight: text(f('in_flight')),
          tasksDone: int(f('tasks_done')),
          dotColor: getComputedStyle(q('.dot', f('health'))).backgroundColor,
        };
      }),
      services: all('[data-testid="services-table"] tbody tr').map((tr) => ({
        name: tr.dataset.service,
        available: tr.dataset.available === 'true',
        providers: int(q('[data-field="providers"]', tr)),
        queueDepth: int(q('[data-field="queue_depth"]', tr)),
        calls: text(q('[data-field="calls"]', tr)),
      })),
      contributors: all('[data-testid="contributors-table"] tbody tr').map((tr) => ({
        id: tr.dataset.workerId,
        rank: int(q('[data-field="rank"]', tr)),
        tasksDone: int(q('[data-field="tasks_done"]', tr)),
      })),
      contributorsMode: byTestId('contributors')?.dataset.mode ?? null,
      contributorsNote: text(byTestId('contributors-note')),
      contributorsNoteReason: byTestId('contributors-note')?.dataset.reason ?? null,
      rankByChoices: all('input[name="rank-by"]').map((i) => i.value),
      periodChoices: all('input[name="board-period"]').length,
      historyCompleted: all('[data-testid="throughput-table"] td[data-series="completed"]').reduce((s, td) => s + int(td), 0),
      historySubmitted: all('[data-testid="throughput-table"] td[data-series="submitted"]').reduce((s, td) => s + int(td), 0),
    };
  });
}

// The page against one API snapshot. Throws on the first difference.
function comparePageWithApi(shown, { stats, workers, services }) {
  assert.equal(shown.connection, 'live');
  assert.equal(shown.live, stats.workers.live, 'live workers');
  assert.deepEqual(shown.health, stats.workers.by_health, 'workers by health');
  assert.deepEqual(shown.tiers, { 1: stats.workers.by_tier['1'], 2: stats.workers.by_tier['2'], 3: stats.workers.by_tier['3'] }, 'workers by tier');
  assert.equal(shown.queueDepth, stats.queue_depth, 'queue depth');
  assert.deepEqual(shown.today, { submitted: stats.today.submitted, completed: stats.today.completed, failed: stats.today.failed }, 'requests today');
  const sum = (key) => stats.history.reduce((s, m) => s + m[key], 0);
  assert.equal(shown.historyCompleted, sum('completed'), 'completed per minute, summed');
  assert.equal(shown.historySubmitted, sum('submitted'), 'submitted per minute, summed');

  assert.deepEqual(shown.workers.map((w) => w.id).sort(), workers.map((w) => w.worker_id).sort(), 'listed workers');
  for (const w of workers) {
    const row = shown.workers.find((r) => r.id === w.worker_id);
    const expected = {
      health: w.health,
      name: w.name,
      tier: w.tier,
      simulated: w.simulated ? 'yes' : 'no',
      services: w.services.join(', '),
      status: w.status,
      trust: w.reputation.trusted ? 'trusted' : w.reputation.state,
      inFlight: `${w.in_flight} / ${w.slots}`,
      tasksDone: w.tasks_done,
    };
    const actual = Object.fromEntries(Object.keys(expected).map((k) => [k, row[k]]));
    assert.deepEqual(actual, expected, `worker ${w.worker_id}`);
  }

  assert.deepEqual(shown.services.map((s) => s.name).sort(), services.map((s) => s.name).sort(), 'listed services');
  for (const s of services) {
    const row = shown.services.find((r) => r.name === s.name);
    assert.equal(row.available, s.available, `service ${s.name} availability`);
    assert.equal(row.calls.includes('503'), !s.available, `service ${s.name}: ${row.calls}`);
    assert.equal(row.queueDepth, s.queue_depth, `service ${s.name} queue depth`);
    // Generic services are served by tier; the broker's provider count is for advertised services.
    if (!s.generic) assert.equal(row.providers, s.providers, `service ${s.name} providers`);
  }

  assert.deepEqual(shown.contributors.map((c) => c.id).sort(), workers.map((w) => w.worker_id).sort(), 'contributors');
  const done = Object.fromEntries(workers.map((w) => [w.worker_id, w.tasks_done]));
  shown.contributors.forEach((c, i) => {
    assert.equal(c.tasksDone, done[c.id], `contributor ${c.id}`);
    if (i > 0) assert.ok(c.tasksDone <= shown.contributors[i - 1].tasksDone, 'contributors ranked by tasks completed');
  });
  assert.equal(shown.contributors[0].rank, 1);
}

// ---- The test ----------------------------------------------------------------------------------------

async function main() {
  assert.ok(config.url && config.artifacts && config.victim, 'usage: dashboard.test.mjs <json config>');
  screenshot = screenshots(config.artifacts);
  let page = null; // the main page, for a screenshot if a check fails
  // This pool has no database: its leaderboard answers 409, which Chromium logs as a failed load.
  // That one is expected (and asked for only once a minute); any other console error is not.
  const watching = watcher({ ignoreConsole: (m) => m.location().url.includes('/api/leaderboard?') && m.text().includes('409') });
  const { outside, consoleErrors, pageErrors } = watching.found;
  // Every request must go to the gateway the page came from.
  const watch = (context, home = config.url) => watching.context(context, home);
  // The key test's page logs its (intended) 401s as console errors, so it is watched for uncaught
  // errors only.
  const watchPage = (page, options) => watching.page(page, options);
  // Leaderboard and stats requests of the main page: the board must not ask more than the page polls.
  const requests = { leaderboard: [], stats: 0 };

  await withBrowser(config.chromium, screenshot, () => page, async (browser) => {
    // 1. The page loads the built bundle with the right types and shows what the API says.
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, colorScheme: 'light' });
    watch(context);
    page = await context.newPage();
    watchPage(page);
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname === '/api/leaderboard') requests.leaderboard.push(u.search);
      if (u.pathname === '/api/admin/stats') requests.stats += 1;
    });
    const assets = [];
    page.on('response', (r) => {
      if (new URL(r.url()).pathname.startsWith('/assets/')) assets.push({ url: r.url(), type: r.headers()['content-type'], cache: r.headers()['cache-control'] });
    });
    const response = await page.goto(PAGE_URL);
    assert.equal(response.status(), 200);
    assert.equal(response.headers()['content-type'], 'text/html; charset=utf-8');
    await eventually('the first data on the page', async () => {
      assert.equal(await page.getByTestId('connection').getAttribute('data-state'), 'live');
      assert.ok((await page.locator('[data-testid="workers-table"] tbody tr').count()) > 0);
    });
    const scripts = assets.filter((a) => a.url.endsWith('.js'));
    const styles = assets.filter((a) => a.url.endsWith('.css'));
    assert.ok(scripts.length >= 1 && styles.length >= 1, `bundle files loaded: ${JSON.stringify(assets)}`);
    for (const a of scripts) assert.match(a.type, /^text\/javascript/, a.url);
    for (const a of styles) assert.match(a.type, /^text\/css/, a.url);
    for (const a of assets) assert.match(a.cache, /immutable/, a.url);
    log(`bundle: ${assets.map((a) => new URL(a.url).pathname).join(', ')}`);

    const expect = config.expect;
    await eventually('the page to match the admin API', async () => {
      const snapshot = await apiSnapshot();
      // What the harness set up, so the API and the page cannot agree on something wrong.
      assert.equal(snapshot.stats.workers.live, expect.workers);
      assert.deepEqual(snapshot.stats.workers.by_tier, expect.by_tier);
      assert.equal(snapshot.stats.queue_depth, expect.queue_depth);
      assert.equal(snapshot.stats.today.failed, expect.failed);
      assert.equal(snapshot.stats.today.completed, expect.completed);
      comparePageWithApi(await readPage(page), snapshot);
    });
    const shown = await readPage(page);
    assert.equal(shown.services.find((s) => s.name === expect.unavailable_service)?.calls, '503 · no provider');
    assert.equal(shown.contributors[0].id, expect.top_contributor, 'the busiest worker leads the contributors board');
    // No database, so no accounts: the board ranks the workers (above) and says why, with no period
    // or credits to choose. The API agrees there is no leaderboard.
    const board = await fetch(`${config.url}/api/leaderboard?period=week&by=credits`);
    assert.equal(board.status, 409, 'a pool without a database has no leaderboard');
    assert.equal((await board.json()).code, 'failed_precondition');
    assert.equal(shown.contributorsMode, 'workers');
    assert.equal(shown.contributorsNoteReason, 'no-database');
    assert.match(shown.contributorsNote, /^Accounts need the broker’s database.*showing the connected workers/);
    assert.deepEqual(shown.rankByChoices, ['tasks', 'compute'], 'no credits without accounts');
    assert.equal(shown.periodChoices, 0, 'no period picker without accounts');
    // By compute time (keyboard: the next radio of the group), then back to tasks.
    await page.getByRole('radio', { name: 'Tasks completed' }).focus();
    await page.keyboard.press('ArrowRight');
    assert.ok(await page.getByRole('radio', { name: 'Compute time' }).isChecked());
    await eventually('the board ranked by compute time', async () => {
      const busy = Object.fromEntries((await apiSnapshot()).workers.map((w) => [w.worker_id, w.busy_seconds]));
      const order = (await readPage(page)).contributors.map((c) => busy[c.id]);
      assert.deepEqual(order, [...order].sort((x, y) => y - x), `compute seconds in board order: ${order}`);
    });
    await page.keyboard.press('ArrowLeft');
    assert.ok(await page.getByRole('radio', { name: 'Tasks completed' }).isChecked());
    log(`page matches the API: ${shown.live} live workers, tiers ${JSON.stringify(shown.tiers)}, today ${JSON.stringify(shown.today)}`);
    await screenshot(page, 'overview-light');

    // 2. Sorting with the keyboard: the headers are buttons; focus survives the live refreshes.
    const tasksHeader = page.getByRole('button', { name: /^Tasks done/ });
    await tasksHeader.focus();
    await page.keyboard.press('Enter');
    const header = page.locator('th', { has: tasksHeader });
    assert.equal(await header.getAttribute('aria-sort'), 'descending');
    const order = async () => (await readPage(page)).workers.map((w) => w.tasksDone);
    const desc = await order();
    assert.deepEqual(desc, [...desc].sort((a, b) => b - a), `sorted by tasks done, descending: ${desc}`);
    await page.keyboard.press('Enter');
    assert.equal(await header.getAttribute('aria-sort'), 'ascending');
    const asc = await order();
    assert.deepEqual(asc, [...asc].sort((a, b) => a - b), `sorted by tasks done, ascending: ${asc}`);
    const updatedAt = await page.locator('[data-testid="connection"] time').getAttribute('datetime');
    await eventually('a refresh after sorting', async () => {
      assert.notEqual(await page.locator('[data-testid="connection"] time').getAttribute('datetime'), updatedAt);
    });
    assert.ok(await tasksHeader.evaluate((el) => el === document.activeElement), 'focus stays on the sort button across refreshes');
    assert.equal(await header.getAttribute('aria-sort'), 'ascending', 'sort order survives refreshes');

    // 3. Filtering: free text, then tier.
    await page.getByLabel('Filter', { exact: true }).fill('chromadb');
    await eventually('the text filter', async () => {
      const ids = (await readPage(page)).workers.map((w) => w.id).sort();
      assert.deepEqual(ids, expect.chromadb_workers);
    });
    assert.match((await readPage(page)).workersCount, new RegExp(`^Showing ${expect.chromadb_workers.length} of ${expect.workers} workers$`));
    await page.getByLabel('Filter', { exact: true }).fill('');
    await page.getByLabel('Tier', { exact: true }).selectOption('1');
    await eventually('the tier filter', async () => {
      const rows = (await readPage(page)).workers;
      assert.ok(rows.length >= 1 && rows.every((w) => w.tier === 1), JSON.stringify(rows));
    });
    await page.getByLabel('Tier', { exact: true }).selectOption('');

    // 4. A worker killed during the test turns red, then disappears once the broker forgets it.
    const victim = config.victim.id;
    await eventually(`${victim} listed as live before it is killed`, async () => {
      const row = (await readPage(page)).workers.find((w) => w.id === victim);
      assert.ok(row && row.health !== 'offline', JSON.stringify(row));
    });
    process.kill(config.victim.pid, 'SIGKILL');
    log(`killed worker ${victim} (pid ${config.victim.pid})`);
    await eventually(`${victim} to turn red`, async () => {
      const row = (await readPage(page)).workers.find((w) => w.id === victim);
      assert.equal(row?.health, 'offline');
      assert.equal(row.status, 'offline');
      assert.equal(row.dotColor, 'rgb(220, 38, 38)', 'the offline dot is red');
    });
    const record = (await api('/api/admin/workers')).workers.find((w) => w.worker_id === victim);
    assert.equal(record?.health, 'offline', 'the API agrees the worker is offline');
    await eventually('the live counts to drop', async () => comparePageWithApi(await readPage(page), await apiSnapshot()));
    const afterKill = await readPage(page);
    assert.equal(afterKill.live, expect.workers - 1);
    assert.equal(afterKill.health.offline, 1);
    await screenshot(page, 'worker-offline');
    await eventually(
      `${victim} to disappear after --offline-retention-ms`,
      async () => {
        const rows = (await readPage(page)).workers;
        assert.ok(rows.length > 0 && !rows.some((w) => w.id === victim), `${victim} still listed`);
      },
      config.offline_retention_ms + 10_000,
    );
    assert.ok(!(await api('/api/admin/workers')).workers.some((w) => w.worker_id === victim), 'the API dropped it too');
    await eventually('the page to match the API again', async () => comparePageWithApi(await readPage(page), await apiSnapshot()));
    await screenshot(page, 'worker-forgotten');

    // 5. Accessibility of the desktop page in light mode.
    const lightViolations = await axeViolations(page);
    assert.deepEqual(lightViolations, [], 'axe-core (light, desktop)');

    // 6. Phone width, dark mode: no sideways scrolling, dark background, no violations.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true, hasTouch: true });
    watch(phone);
    const phonePage = await phone.newPage();
    watchPage(phonePage);
    await phonePage.goto(PAGE_URL);
    await eventually('data on the phone', async () => comparePageWithApi(await readPage(phonePage), await apiSnapshot()));
    const layout = await pageLayout(phonePage);
    assert.ok(layout.fits, `the page fits a phone: ${JSON.stringify(layout)}`);
    assert.ok(layout.dark, `dark background in dark mode: ${layout.background}`);
    await screenshot(phonePage, 'phone-dark');
    assert.deepEqual(await axeViolations(phonePage), [], 'axe-core (dark, phone)');
    await phone.close();

    // 7. Admin key: a second gateway on the same broker requires an admin key on admin routes (a
    // real 401 without it); the page asks once, keeps the key in sessionStorage while the tab lives,
    // and sends it.
    const keyed = await browser.newContext({ viewport: { width: 1024, height: 800 } });
    watch(keyed, config.keyed_url);
    const KEY = config.admin_key;
    const sentKeys = [];
    keyed.on('request', (request) => {
      if (request.url().includes('/api/admin/')) sentKeys.push(request.headers()['x-api-key'] ?? null);
    });
    const keyPage = await keyed.newPage();
    watchPage(keyPage, { console: false });
    await keyPage.goto(`${config.keyed_url}/?refresh=0.5`);
    const dialog = keyPage.getByRole('dialog', { name: 'Admin API key' });
    await dialog.waitFor({ state: 'visible', timeout: 10_000 });
    assert.ok(await keyPage.getByLabel('Key', { exact: true }).evaluate((el) => el === document.activeElement), 'the key field has focus');
    await screenshot(keyPage, 'admin-key-dialog');
    // Closed without a key: the page says what it needs and keeps polling, but does not nag.
    await keyPage.keyboard.press('Escape');
    await eventually('the key banner after Escape', async () => {
      assert.equal(await dialog.count(), 0);
      assert.equal(await keyPage.getByTestId('banner').getAttribute('data-state'), 'auth');
    });
    const asked = sentKeys.length;
    await eventually('polling to go on without a key', async () => assert.ok(sentKeys.length >= asked + 6));
    assert.equal(await dialog.count(), 0, 'no new prompt once dismissed');
    await keyPage.getByRole('button', { name: 'Enter admin key' }).click();
    await dialog.waitFor({ state: 'visible', timeout: 10_000 });
    await keyPage.getByLabel('Key', { exact: true }).fill('wrong-key');
    await keyPage.keyboard.press('Enter');
    await eventually('the refused key to be asked for again', async () => {
      assert.ok(await dialog.isVisible());
      assert.match(await dialog.textContent(), /refused that key/);
    });
    await keyPage.getByLabel('Key', { exact: true }).fill(KEY);
    await keyPage.getByRole('button', { name: 'Use this key' }).click();
    await eventually('live data with the key', async () => comparePageWithApi(await readPage(keyPage), await apiSnapshot()));
    assert.equal(await keyPage.evaluate(() => sessionStorage.getItem('rma.adminKey')), KEY);
    assert.ok(sentKeys.includes('wrong-key') && sentKeys.at(-1) === KEY, `keys sent: ${sentKeys.join(', ')}`);
    await keyPage.reload();
    await eventually('live data after a reload, without asking again', async () => {
      assert.equal(await dialog.count(), 0, 'no key dialog after a reload');
      comparePageWithApi(await readPage(keyPage), await apiSnapshot());
    });
    await keyed.close();

    // The page polled every 0.5 s all along, but asked the absent leaderboard only about once a
    // minute (dashboard/src/api.js), with the board's query.
    log(`main page: ${requests.stats} polls, ${requests.leaderboard.length} leaderboard requests`);
    // (One a poll would be as many as the polls; once a minute at two polls a second is one in 120.)
    assert.ok(requests.stats >= 10, `the page kept polling: ${requests.stats}`);
    assert.ok(requests.leaderboard.length >= 1 && requests.leaderboard.length <= 2 + requests.stats / 30, `leaderboard asked ${requests.leaderboard.length} times in ${requests.stats} polls`);
    assert.equal(requests.leaderboard[0], '?period=week&by=credits');

    // Nothing so far may have failed in the page or reached another host.
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
    assert.deepEqual(consoleErrors, [], 'console errors (CSP violations, failed loads)');
    assert.deepEqual(outside, [], 'requests to other hosts');

    // 8. The broker goes away, then the gateway: the page says so, keeping the last figures.
    process.kill(config.broker_pid, 'SIGKILL');
    log('killed the broker');
    await eventually(
      'the broker-unreachable banner',
      async () => {
        const s = await readPage(page);
        assert.equal(s.banner, 'broker-down', s.bannerText ?? 'no banner');
        assert.equal(s.connection, 'broker-down');
        assert.match(s.bannerText, /broker cannot be reached/);
        assert.ok(s.workers.length > 0, 'the last known workers stay on screen');
      },
      20_000,
    );
    await screenshot(page, 'broker-unreachable');
    process.kill(config.gateway_pid, 'SIGKILL');
    log('killed the gateway');
    await eventually('the gateway-unreachable banner', async () => {
      const s = await readPage(page);
      assert.equal(s.banner, 'gateway-down', s.bannerText ?? 'no banner');
      assert.match(s.bannerText, /gateway cannot be reached/);
    });
    await screenshot(page, 'gateway-unreachable');
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page during the outage');
    assert.deepEqual(outside, [], 'requests to other hosts');
    await context.close();
    page = null;
  });
}

await runMain('dashboard', main);
