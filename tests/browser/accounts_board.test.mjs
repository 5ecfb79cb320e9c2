// The dashboard's contributors board on a pool with accounts, in a real browser (Debian's Chromium
// through playwright-core). dashboard_browser_test.cc starts the pool (rma-broker on a fresh
// PostgreSQL database, rma-gateway --broker-accounts, enrolled workers of two accounts that have run
// tasks) and runs this script with one JSON argument:
//   { "url": gateway base URL, "admin_key": the pool's admin key, "chromium": browser path,
//     "artifacts": directory for screenshots,
//     "expect": { "accounts": { name: { "tasks", "workers": [ids that may have earned] } } } }
// It checks that the board ranks the accounts of GET /api/leaderboard with their machines beneath and
// the API's numbers (page and API read at the same moment), that the period and rank-by pickers ask
// the leaderboard for what they say (by keyboard), that an account's machines fold and unfold, and that
// the page stays accessible (axe-core) in light and dark and fits a phone. Every wait is a poll of a
// page or API condition with a deadline; nothing sleeps. Exit code 0 means every check passed.
import assert from 'node:assert/strict';
import { axeViolations, eventually, log, pageLayout, runMain, screenshots, watcher, withBrowser } from './browser_support.mjs';

const config = JSON.parse(process.argv[2] ?? '{}');
const PAGE_URL = `${config.url}/?refresh=0.5`;

async function leaderboard(period, by) {
  const response = await fetch(`${config.url}/api/leaderboard?period=${period}&by=${by}`);
  assert.equal(response.status, 200, `the leaderboard answered ${response.status}`);
  return response.json();
}

// The board as shown: its query, and every account with its machines and their figures.
function readBoard(page) {
  return page.evaluate(() => {
    const q = (sel, root = document) => root.querySelector(sel);
    const all = (sel, root = document) => [...root.querySelectorAll(sel)];
    const text = (el) => (el ? el.textContent.replace(/\s+/g, ' ').trim() : null);
    const figures = (tr) => ({
      credits: Number(q('[data-field="credits"]', tr).dataset.value),
      creditsText: text(q('[data-field="credits"]', tr)),
      tasks: Number(q('[data-field="tasks"]', tr).dataset.value),
      tasksText: text(q('[data-field="tasks"]', tr)),
      compute_s: Number(q('[data-field="compute_s"]', tr).dataset.value),
    });
    const table = q('[data-testid="accounts-board"]');
    return {
      mode: q('[data-testid="contributors"]')?.dataset.mode ?? null,
      note: text(q('[data-testid="contributors-note"]')),
      period: table?.dataset.period ?? null,
      by: table?.dataset.by ?? null,
      busy: table?.getAttribute('aria-busy') ?? null,
      caption: text(q('[data-testid="board-caption"]')),
      accounts: all('tbody[data-account]', table ?? document.createElement('table')).map((body) => {
        const row = q('tr.account-row', body);
        return {
          account: body.dataset.account,
          rank: Number(text(q('[data-field="rank"]', row))),
          expanded: q('button.disclosure', row)?.getAttribute('aria-expanded') ?? null,
          ...figures(row),
          workers: all('tr.machine-row', body).map((tr) => ({
            worker_id: tr.dataset.workerId,
            name: text(q('[data-field="name"]', tr)),
            visible: !tr.hidden && tr.getClientRects().length > 0,
            ...figures(tr),
          })),
        };
      }),
    };
  });
}

// The board against the API's answer for the same query. Throws on the first difference.
function compareBoard(shown, doc) {
  assert.equal(shown.mode, 'accounts', `the accounts board (note: ${shown.note})`);
  assert.equal(shown.busy, 'false', 'the board shows the answer to its own query');
  assert.equal(shown.period, doc.period);
  assert.equal(shown.by, doc.by);
  assert.deepEqual(
    shown.accounts.map((a) => [a.rank, a.account]),
    doc.accounts.map((a) => [a.rank, a.account]),
    'accounts and ranks',
  );
  for (const a of doc.accounts) {
    const row = shown.accounts.find((r) => r.account === a.account);
    assert.deepEqual([row.credits, row.tasks, row.compute_s], [a.credits, a.tasks, a.compute_s], `account ${a.account}`);
    assert.equal(row.tasksText, String(a.tasks));
    const creditsShown = Number(row.creditsText.replace(/,/g, ''));
    assert.ok(Math.abs(creditsShown - a.credits) <= 0.005 + 1e-9, `${a.account} credits shown as ${row.creditsText}, API ${a.credits}`);
    assert.deepEqual(row.workers.map((w) => w.worker_id).sort(), a.workers.map((w) => w.worker_id).sort(), `machines of ${a.account}`);
    for (const w of a.workers) {
      const m = row.workers.find((x) => x.worker_id === w.worker_id);
      assert.deepEqual([m.name, m.credits, m.tasks, m.compute_s], [w.name || w.worker_id, w.credits, w.tasks, w.compute_s], `machine ${w.worker_id}`);
    }
  }
}

// The API's answer and the page, read together until they agree (the page refreshes every 0.5 s).
async function boardMatchesApi(page, period, by, what) {
  return eventually(what, async () => {
    const doc = await leaderboard(period, by);
    compareBoard(await readBoard(page), doc);
    return doc;
  });
}

async function main() {
  assert.ok(config.url && config.admin_key && config.artifacts && config.expect, 'usage: accounts_board.test.mjs <json config>');
  const screenshot = screenshots(config.artifacts);
  const watching = watcher();
  let page = null;
  await withBrowser(config.chromium, screenshot, () => page, async (browser) => {
    // The gateway takes keys from the broker and wants the admin key for the admin routes: the page
    // gets it as if it had been typed into its dialog earlier in this tab.
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, colorScheme: 'light' });
    await context.addInitScript((key) => sessionStorage.setItem('rma.adminKey', key), config.admin_key);
    watching.context(context, config.url);
    page = await context.newPage();
    watching.page(page);
    const asked = []; // the query of every leaderboard request, and the key it carried
    let polls = 0;
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname === '/api/leaderboard') asked.push({ period: u.searchParams.get('period'), by: u.searchParams.get('by'), key: r.headers()['x-api-key'] });
      if (u.pathname === '/api/admin/stats') polls += 1;
    });
    await page.goto(PAGE_URL);

    // 1. This week by credits (the defaults): the accounts with their machines and the API's numbers.
    const week = await boardMatchesApi(page, 'week', 'credits', 'the accounts board to match the leaderboard');
    for (const [name, want] of Object.entries(config.expect.accounts)) {
      // What the harness set up, so the page and the API cannot agree on something wrong.
      const a = week.accounts.find((x) => x.account === name);
      assert.ok(a, `${name} is on the leaderboard: ${JSON.stringify(week)}`);
      assert.equal(a.tasks, want.tasks, `${name}'s tasks`);
      assert.ok(a.credits > 0 && a.compute_s > 0, `${name} earned: ${JSON.stringify(a)}`);
      assert.ok(a.workers.length >= 1 && a.workers.every((w) => want.workers.includes(w.worker_id)), `${name}'s machines: ${JSON.stringify(a.workers)}`);
    }
    assert.equal(week.accounts.length, Object.keys(config.expect.accounts).length, 'only accounts whose machines earned');
    const shown = await readBoard(page);
    assert.ok(shown.accounts.every((a) => a.expanded === 'true' && a.workers.every((w) => w.visible)), 'machines shown beneath their accounts');
    assert.match(shown.caption, /^Accounts ranked by credits earned this week/);
    log(`board matches the API: ${shown.accounts.map((a) => `${a.rank}. ${a.account} (${a.workers.map((w) => w.worker_id).join(', ')})`).join('; ')}`);
    assert.ok(asked.length >= 1 && asked.every((q) => q.key === config.admin_key), 'the leaderboard is asked with the page key');
    await screenshot(page, 'accounts-week-light');

    // 2. The period picker, by keyboard: Today, then All time. Each asks the leaderboard for its period.
    const periodRadio = (name) => page.getByRole('radio', { name, exact: true });
    await periodRadio('This week').focus();
    await page.keyboard.press('ArrowLeft');
    assert.ok(await periodRadio('Today').isChecked());
    await boardMatchesApi(page, 'day', 'credits', 'the board for today');
    assert.ok(asked.some((q) => q.period === 'day' && q.by === 'credits'), 'a request with period=day');
    await page.keyboard.press('ArrowLeft'); // wraps around to the last choice
    assert.ok(await periodRadio('All time').isChecked());
    const all = await boardMatchesApi(page, 'all', 'credits', 'the board for all time');
    assert.ok(asked.some((q) => q.period === 'all'), 'a request with period=all');
    assert.match((await readBoard(page)).caption, /credits earned in all/);

    // 3. Rank by tasks: asks by=tasks; the API's order and numbers.
    await page.getByRole('radio', { name: 'Tasks completed', exact: true }).check();
    await boardMatchesApi(page, 'all', 'tasks', 'the board by tasks');
    assert.ok(asked.some((q) => q.period === 'all' && q.by === 'tasks'), 'a request with by=tasks');
    await screenshot(page, 'accounts-all-by-tasks');

    // 4. An account's machines fold away and come back (a disclosure button, by keyboard).
    const top = all.accounts[0].account;
    const toggle = page.locator(`tbody[data-account="${top}"] button.disclosure`);
    await toggle.focus();
    await page.keyboard.press('Enter');
    await eventually(`${top}'s machines folded`, async () => {
      const a = (await readBoard(page)).accounts.find((x) => x.account === top);
      assert.equal(a.expanded, 'false');
      assert.ok(a.workers.every((w) => !w.visible), JSON.stringify(a.workers));
    });
    // Folded stays folded across refreshes, and focus stays on the button.
    const pollsBefore = polls;
    await eventually('two refreshes', async () => assert.ok(polls >= pollsBefore + 2));
    assert.equal((await readBoard(page)).accounts.find((x) => x.account === top).expanded, 'false');
    assert.ok(await toggle.evaluate((el) => el === document.activeElement), 'focus stays on the disclosure button');
    await screenshot(page, 'accounts-folded');
    await page.keyboard.press('Space');
    await eventually(`${top}'s machines unfolded`, async () => {
      const a = (await readBoard(page)).accounts.find((x) => x.account === top);
      assert.ok(a.expanded === 'true' && a.workers.every((w) => w.visible));
    });

    // 5. One leaderboard request per refresh at most.
    log(`${polls} polls, ${asked.length} leaderboard requests`);
    assert.ok(asked.length <= polls + 1, `leaderboard asked ${asked.length} times in ${polls} polls`);

    // 6. Accessibility, light and desktop; then a phone in dark mode.
    assert.deepEqual(await axeViolations(page), [], 'axe-core (light, desktop)');
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true, hasTouch: true });
    await phone.addInitScript((key) => sessionStorage.setItem('rma.adminKey', key), config.admin_key);
    watching.context(phone, config.url);
    const phonePage = await phone.newPage();
    watching.page(phonePage);
    await phonePage.goto(PAGE_URL);
    await boardMatchesApi(phonePage, 'week', 'credits', 'the board on the phone');
    const layout = await pageLayout(phonePage);
    assert.ok(layout.fits, `the page fits a phone: ${JSON.stringify(layout)}`);
    assert.ok(layout.dark, `dark background in dark mode: ${layout.background}`);
    await phonePage.getByTestId('contributors').scrollIntoViewIfNeeded();
    await screenshot(phonePage, 'accounts-phone-dark');
    assert.deepEqual(await axeViolations(phonePage), [], 'axe-core (dark, phone)');
    await phone.close();

    assert.deepEqual(watching.found.pageErrors, [], 'uncaught errors in the page');
    assert.deepEqual(watching.found.consoleErrors, [], 'console errors (CSP violations, failed loads)');
    assert.deepEqual(watching.found.outside, [], 'requests to other hosts');
    await context.close();
    page = null;
  });
}

await runMain('accounts board', main);
