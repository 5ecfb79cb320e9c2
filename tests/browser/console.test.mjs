// End-to-end test of the operator console (issue 19) in Debian's Chromium against a real pool with
// accounts and PostgreSQL. dashboard_browser_test.cc (DashboardConsoleTest) starts the pool, gives it
// known work and runs this script with one JSON argument:
//   { "url", "admin_key", "chromium", "artifacts",
//     "tasks": { "completed": [ids of echo tasks, oldest first], "payloads": {id: payload},
//                "running": id of a long sleep task, "dead": [ids of dead "flaky" tasks],
//                "brittle": [ids of dead "brittle" tasks],
//                "orphan_service": a service nobody provides, with queued tasks },
//     "workers": { "main": id, "drain": id, "revoke": id, "cap": id }, "account": name }
// It visits every page, performs every action through its confirmation dialog (Escape cancels one
// first), checks each action's effect through the API (not only the page), compares the numbers a page
// shows with the admin API's, checks axe-core in light and dark and the phone width, times each page
// from navigation to data shown, and saves a screenshot of every page. Every wait is a condition
// with a deadline; nothing sleeps. Exit code 0 means every check passed.
import assert from 'node:assert/strict';
import { axeViolations, eventually, log, pageLayout, runMain, screenshots, watcher, withBrowser } from './browser_support.mjs';

const config = JSON.parse(process.argv[2] ?? '{}');
const KEY = config.admin_key;
const loadTimes = [];

async function api(pathname, { method = 'GET', key = KEY, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (key) headers['X-API-Key'] = key;
  if (method !== 'GET') headers['Content-Type'] = 'application/json';
  const response = await fetch(`${config.url}${pathname}`, { method, headers, body: method === 'GET' ? undefined : JSON.stringify(body ?? {}) });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: response.status, body: json, text };
}

async function apiOk(pathname) {
  const r = await api(pathname);
  assert.equal(r.status, 200, `${pathname} answered ${r.status}: ${r.text}`);
  return r.body;
}

let screenshot;

// Opens `hash` in `page` and waits for the page's data: the load time, navigation to data shown.
async function open(page, hash, pageName, timeoutMs = 10_000) {
  const started = Date.now();
  await page.goto(`${config.url}/${hash}`);
  await page.waitForSelector(`[data-page="${pageName}"][data-loaded="true"]`, { timeout: timeoutMs });
  const ms = Date.now() - started;
  loadTimes.push({ page: pageName, hash, ms });
  log(`page ${pageName} (${hash}) loaded in ${ms} ms`);
  return ms;
}

// The same page at phone width and in dark mode: fits, no axe violations; screenshots of both.
async function checkLooks(page, name) {
  await screenshot(page, name);
  assert.deepEqual(await axeViolations(page), [], `${name}: axe-core in light mode`);
  await page.emulateMedia({ colorScheme: 'dark' });
  try {
    assert.ok((await pageLayout(page)).dark, `${name}: dark mode is dark`);
    assert.deepEqual(await axeViolations(page), [], `${name}: axe-core in dark mode`);
    await screenshot(page, `${name}-dark`);
  } finally {
    await page.emulateMedia({ colorScheme: 'light' });
  }
  const size = page.viewportSize();
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    await eventually(`${name} to fit a phone`, async () => {
      const layout = await pageLayout(page);
      assert.ok(layout.fits, `${name}: ${layout.scrollWidth} px wide at phone width ${layout.width}`);
    });
    await screenshot(page, `${name}-phone`);
  } finally {
    await page.setViewportSize(size);
  }
}

// Clicks `button`, checks the dialog is modal with focus inside, cancels it with Escape when
// `escapeFirst` (nothing may change), then confirms; returns the result message's text.
async function confirmAction(page, button, { escapeFirst = false, expectOk = true } = {}) {
  if (escapeFirst) {
    await page.click(button);
    await page.waitForSelector('[data-testid="confirm-dialog"][open]');
    // Focus is trapped: Tab a few times and it is still inside the dialog.
    for (let i = 0; i < 4; i++) await page.keyboard.press('Tab');
    assert.ok(await page.evaluate(() => !!document.activeElement?.closest('dialog[open]')), 'focus stays in the dialog');
    await page.keyboard.press('Escape');
    await page.waitForSelector('[data-testid="confirm-dialog"]', { state: 'detached' });
    const cancelled = await page.textContent('[data-testid="action-result"]');
    assert.match(cancelled, /cancelled/, 'Escape says nothing was changed');
  }
  await page.click(button);
  await page.waitForSelector('[data-testid="confirm-dialog"][open]');
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'cancel', 'focus starts on Cancel');
  await page.click('[data-testid="confirm"]');
  await page.waitForSelector('[data-testid="confirm-dialog"]', { state: 'detached' });
  const result = page.locator('[data-testid="action-result"]');
  await result.waitFor();
  const text = (await result.textContent()).trim();
  const ok = (await result.getAttribute('data-ok')) === 'true';
  log(`action result: ${text}`);
  assert.equal(ok, expectOk, `action result: ${text}`);
  return text;
}

const rowsOf = (page, selector, attr) => page.$$eval(`${selector} tbody tr`, (trs, a) => trs.map((tr) => tr.getAttribute(a)), attr);

// ---- Pages ------------------------------------------------------------------------------------------

async function overview(page) {
  await open(page, '#/', 'overview');
  await eventually('the overview to match the API', async () => {
    const stats = await apiOk('/api/admin/stats');
    const shown = Number((await page.textContent('[data-testid="live-workers"]')).replace(/\D/g, ''));
    assert.equal(shown, stats.workers.live);
  });
  // Keyboard: the console's navigation is reachable with Tab and works with Enter.
  await page.focus('[data-nav="tasks"]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-page="tasks"][data-loaded="true"]');
  await page.goBack();
  await page.waitForSelector('[data-testid="live-workers"]');
  await checkLooks(page, 'overview');
}

async function tasks(page) {
  const t = config.tasks;
  await open(page, '#/tasks', 'tasks');
  await checkLooks(page, 'tasks');
  // The page's first rows are the API's for the same filters (newest first).
  await eventually('the task list to match the API', async () => {
    const doc = await apiOk('/api/tasks?limit=50');
    const shown = await rowsOf(page, '[data-testid="tasks-table"]', 'data-task-id');
    assert.deepEqual(shown, doc.tasks.map((x) => x.task_id));
  });
  // Filters through the form: service and status go into the hash and the list.
  await page.fill('#f-service', 'flaky');
  await page.selectOption('#f-status', 'dead');
  // What was typed survives the page's refreshes (every 5 s): by the second task list answer after the
  // typing, the page has rendered the first one.
  for (let i = 0; i < 2; i++) {
    await page.waitForResponse((r) => new URL(r.url()).pathname === '/api/tasks', { timeout: 15_000 });
  }
  assert.equal(await page.inputValue('#f-service'), 'flaky', 'the typed service filter survives a refresh');
  assert.equal(await page.inputValue('#f-status'), 'dead', 'the chosen status survives a refresh');
  await page.click('[data-testid="apply-filters"]');
  await page.waitForFunction(() => location.hash.includes('service=flaky') && location.hash.includes('status=dead'));
  await eventually('the dead flaky tasks', async () => {
    const doc = await apiOk('/api/tasks?service=flaky&status=dead&limit=50');
    const shown = await rowsOf(page, '[data-testid="tasks-table"]', 'data-task-id');
    assert.deepEqual(new Set(shown), new Set(doc.tasks.map((x) => x.task_id)));
    assert.equal(shown.length, t.dead.length);
  });
  // Account and worker filters agree with the API.
  for (const [key, value] of [
    ['account', config.account],
    ['worker', config.workers.main],
  ]) {
    await open(page, `#/tasks?${key}=${encodeURIComponent(value)}`, 'tasks');
    await eventually(`tasks filtered by ${key}`, async () => {
      const doc = await apiOk(`/api/tasks?${key}=${encodeURIComponent(value)}&limit=50`);
      const shown = await rowsOf(page, '[data-testid="tasks-table"]', 'data-task-id');
      assert.deepEqual(shown, doc.tasks.map((x) => x.task_id));
      assert.ok(shown.length > 0, `some task of ${key} ${value}`);
    });
  }
  // Time range: created from the first completed task on, until before the last one.
  const first = await apiOk(`/api/tasks/${t.completed[0]}`);
  const last = await apiOk(`/api/tasks/${t.completed[t.completed.length - 1]}`);
  const range = `since=${encodeURIComponent(first.created_at)}&until=${encodeURIComponent(last.created_at)}&service=echo`;
  await open(page, `#/tasks?${range}`, 'tasks');
  await eventually('tasks in a time range', async () => {
    const doc = await apiOk(`/api/tasks?${range}&limit=50`);
    const shown = await rowsOf(page, '[data-testid="tasks-table"]', 'data-task-id');
    assert.deepEqual(shown, doc.tasks.map((x) => x.task_id));
    assert.ok(!shown.includes(t.completed[t.completed.length - 1]), 'until is exclusive');
    assert.ok(shown.includes(t.completed[0]), 'since is inclusive');
  });
  // Paging by cursor, two echo tasks a page: forward, reload, back, browser back.
  await open(page, '#/tasks?service=echo&limit=2', 'tasks');
  const page1 = await rowsOf(page, '[data-testid="tasks-table"]', 'data-task-id');
  const api1 = await apiOk('/api/tasks?service=echo&limit=2');
  assert.deepEqual(page1, api1.tasks.map((x) => x.task_id));
  assert.ok(api1.next_cursor, 'more than one page of echo tasks');
  await page.click('[data-testid="page-next"]');
  await page.waitForFunction(() => location.hash.includes('cursor='));
  const api2 = await apiOk(`/api/tasks?service=echo&limit=2&cursor=${encodeURIComponent(api1.next_cursor)}`);
  await eventually('page 2', async () => {
    assert.deepEqual(await rowsOf(page, '[data-testid="tasks-table"]', 'data-task-id'), api2.tasks.map((x) => x.task_id));
  });
  await page.reload();
  await page.waitForSelector('[data-page="tasks"][data-loaded="true"]');
  assert.deepEqual(await rowsOf(page, '[data-testid="tasks-table"]', 'data-task-id'), api2.tasks.map((x) => x.task_id), 'reload keeps the page');
  await page.click('[data-testid="page-back"]');
  await eventually('back to page 1', async () => {
    assert.deepEqual(await rowsOf(page, '[data-testid="tasks-table"]', 'data-task-id'), page1);
  });
  await page.goBack();
  await eventually('browser back to page 2', async () => {
    assert.deepEqual(await rowsOf(page, '[data-testid="tasks-table"]', 'data-task-id'), api2.tasks.map((x) => x.task_id));
  });
}

async function taskPage(page) {
  const t = config.tasks;
  const id = t.completed[0];
  await open(page, `#/tasks/${id}`, 'task');
  const apiTask = await apiOk(`/api/tasks/${id}?detail=1`);
  assert.equal(await page.getAttribute('[data-page="task"]', 'data-status'), apiTask.status);
  const payloadText = await page.textContent('[data-testid="task-payload"] [data-field="text"]');
  assert.equal(payloadText, JSON.stringify(t.payloads[id], null, 2), 'the payload pretty-printed');
  assert.equal(await page.getAttribute('[data-testid="task-result"]', 'data-kind'), 'json');
  const attempts = await rowsOf(page, '[data-testid="attempts-table"]', 'data-outcome');
  assert.deepEqual(attempts, (apiTask.attempt_log ?? []).map((a) => a.outcome));
  await checkLooks(page, 'task');
  // The attempt's worker link leads to the worker page.
  await page.click('[data-testid="attempts-table"] [data-field="worker_id"] a');
  await page.waitForSelector('[data-page="worker"][data-loaded="true"]');
  await page.goBack();
  await page.waitForSelector('[data-page="task"][data-loaded="true"]');

  // A dead task: its error, and a single retry (effect: a second attempt in the API's log).
  const dead = t.dead[0];
  await open(page, `#/tasks/${dead}`, 'task');
  assert.match(await page.textContent('[data-testid="task-error"]'), /handler_error|fail/i);
  const before = (await apiOk(`/api/tasks/${dead}?detail=1`)).attempt_log?.length ?? 0;
  await confirmAction(page, '[data-testid="action-retry"]', { escapeFirst: true });
  // Through the API: out of the dead letters (queued again; its only provider may be slow to take it
  // now that its reputation has suffered from the failures) or already run again.
  await eventually('the retried task to leave the dead letters', async () => {
    const after = await apiOk(`/api/tasks/${dead}?detail=1`);
    assert.ok(after.status !== 'dead' || (after.attempt_log?.length ?? 0) > before, `${after.status}, attempt log ${after.attempt_log?.length} after ${before}`);
  }, 20_000);

  // A running task: live status, then cancel.
  const running = t.running;
  await open(page, `#/tasks/${running}`, 'task');
  await eventually('the long task to show running', async () => {
    assert.equal(await page.getAttribute('[data-page="task"]', 'data-status'), 'running');
  });
  await confirmAction(page, '[data-testid="action-cancel"]', { escapeFirst: true });
  await eventually('the cancel to reach the API', async () => {
    assert.equal((await apiOk(`/api/tasks/${running}`)).status, 'cancelled');
  });
  await eventually('the page to show it cancelled', async () => {
    assert.equal(await page.getAttribute('[data-page="task"]', 'data-status'), 'cancelled');
  });
}

async function deadLetters(page) {
  await open(page, '#/dead-letters', 'dead-letters');
  await eventually('dead letters to match the API', async () => {
    const doc = await apiOk('/api/admin/dead-letters');
    const shown = Number((await page.textContent('[data-testid="dead-total"]')).replace(/\D/g, ''));
    assert.equal(shown, doc.total);
    const rows = await page.$$eval('[data-testid="dead-groups"] tbody tr', (trs) =>
      trs.map((tr) => ({ service: tr.dataset.service, code: tr.dataset.errorCode, count: Number(tr.querySelector('[data-field="count"]').textContent.replace(/\D/g, '')) })),
    );
    assert.deepEqual(rows, doc.groups.map((g) => ({ service: g.service, code: g.error_code ?? '', count: g.count })));
    assert.ok(rows.some((r) => r.service === 'flaky'), 'the flaky group is listed');
  }, 20_000);
  await checkLooks(page, 'dead-letters');
  const flaky = '[data-testid="dead-groups"] tr[data-service="flaky"]';
  // Bulk retry of the group: every task gets another attempt (then fails again: builtin:fail). The
  // effect, through the API: each one's newest attempt started after the retry.
  const newestStart = (log) => Math.max(0, ...(log ?? []).map((a) => Date.parse(a.started_at) || 0));
  const details = async () => Promise.all(config.tasks.dead.map((id) => apiOk(`/api/tasks/${id}?detail=1`)));
  const before = (await details()).map((t) => newestStart(t.attempt_log));
  const text = await confirmAction(page, `${flaky} [data-action="retry"]`, { escapeFirst: true });
  assert.match(text, /Retried \d+ of \d+/);
  // Each is out of the dead letters (queued or running again) or has already run again.
  await eventually('every flaky task to be retried', async () => {
    const after = await details();
    after.forEach((t, i) =>
      assert.ok(t.status !== 'dead' || newestStart(t.attempt_log) > before[i], `task ${t.task_id}: ${t.status} ${JSON.stringify(t.attempt_log)}`),
    );
  }, 30_000);
  // Discard the other group: its tasks leave the dead letters for good.
  const brittle = '[data-testid="dead-groups"] tr[data-service="brittle"]';
  const discarded = await confirmAction(page, `${brittle} [data-action="discard"]`, { escapeFirst: true });
  assert.match(discarded, new RegExp(`Discarded ${config.tasks.brittle.length} of ${config.tasks.brittle.length}`));
  await eventually('the discard to reach the API', async () => {
    const doc = await apiOk('/api/admin/dead-letters');
    assert.ok(!doc.groups.some((g) => g.service === 'brittle'), JSON.stringify(doc.groups));
    assert.equal((await apiOk('/api/tasks?service=brittle&status=dead&limit=50')).tasks.length, 0);
  });
  await eventually('the page to drop the group', async () => {
    assert.equal(await page.$(brittle), null);
  });
}

async function history(page) {
  await open(page, '#/history?service=echo&range=1h', 'history');
  await eventually('history totals to match the API', async () => {
    const doc = await apiOk('/api/admin/history?service=echo&range=1h');
    const sum = (k) => doc.points.reduce((s, p) => s + (p[k] ?? 0), 0);
    const totals = page.locator('[data-testid="history-totals"]');
    assert.equal(Number(await totals.getAttribute('data-completed')), sum('completed'));
    assert.equal(Number(await totals.getAttribute('data-submitted')), sum('submitted'));
    assert.ok(sum('completed') >= config.tasks.completed.length, `echo completions in the last hour: ${sum('completed')}`);
  }, 90_000); // the per-minute statistics are written at the end of each minute
  await checkLooks(page, 'history');
  // Ranges through the radio buttons: into the hash, the API's step.
  for (const [range, points] of [
    ['24h', 96],
    ['7d', 84],
  ]) {
    await page.check(`input[name="history-range"][value="${range}"]`);
    await page.waitForFunction((r) => location.hash.includes(`range=${r}`), range);
    await eventually(`the ${range} chart`, async () => {
      const text = await page.textContent('[data-testid="history-totals"]');
      assert.match(text, new RegExp(`\\(${points} points`));
    });
  }
  // The services' queues match the API, and purging the orphan service's queue empties it.
  const orphan = config.tasks.orphan_service;
  const row = `[data-testid="services-history-table"] tr[data-service="${orphan}"]`;
  await eventually('the orphan queue to match the API', async () => {
    const services = await apiOk('/api/admin/services');
    const s = services.services.find((x) => x.name === orphan);
    assert.ok(s, `${orphan} is listed by the API`);
    assert.equal(Number((await page.textContent(`${row} [data-field="queue_depth"]`)).replace(/\D/g, '')), s.queue_depth);
    assert.ok(s.queue_depth > 0);
  });
  const text = await confirmAction(page, `${row} [data-action="purge"]`, { escapeFirst: true });
  assert.match(text, /Purged \d+ queued task/);
  await eventually('the purge to reach the API', async () => {
    const q = await apiOk('/api/admin/queues');
    assert.equal(q.queues[orphan]?.depth ?? 0, 0);
    const cancelled = await apiOk(`/api/tasks?service=${orphan}&status=cancelled&limit=50`);
    assert.ok(cancelled.tasks.length > 0 && cancelled.tasks.every((x) => x.error_code === 'purged'));
  });
}

async function worker(page) {
  const w = config.workers;
  const record = async (id) => apiOk(`/api/admin/workers/${encodeURIComponent(id)}`);
  await open(page, `#/workers/${w.main}`, 'worker');
  await eventually('the worker page to match the API', async () => {
    const doc = await record(w.main);
    const done = Number((await page.textContent('[data-testid="worker-facts"] [data-field="tasks_done"]')).replace(/\(.*$/, '').replace(/\D/g, ''));
    assert.equal(done, doc.tasks_done);
    assert.equal((await page.textContent('[data-field="status"] .pill')).trim(), doc.status);
    const services = await page.$$eval('[data-testid="worker-services"] li', (lis) => lis.map((li) => li.dataset.service));
    assert.deepEqual(services, doc.services);
  });
  assert.ok((await page.$$('[data-testid="worker-connections"] tbody tr')).length > 0, 'connection history shown');
  await checkLooks(page, 'worker');
  // Trust state.
  await page.selectOption('#trust-state', 'trusted');
  await confirmAction(page, '[data-testid="action-trust"]', { escapeFirst: true });
  await eventually('trust to reach the API', async () => assert.equal((await record(w.main)).reputation?.trusted, true));

  // Drain, then undrain.
  await open(page, `#/workers/${w.drain}`, 'worker');
  await confirmAction(page, '[data-testid="action-drain"]', { escapeFirst: true });
  await eventually('drain to reach the API', async () => assert.equal((await record(w.drain)).status, 'draining'));
  await page.waitForSelector('[data-testid="action-undrain"]');
  await confirmAction(page, '[data-testid="action-undrain"]');
  await eventually('undrain to reach the API', async () => assert.notEqual((await record(w.drain)).status, 'draining'));

  // Tier cap.
  await page.selectOption('#tier-cap', '3');
  await confirmAction(page, '[data-testid="action-cap"]');
  await eventually('the cap to reach the API', async () => assert.equal((await record(w.drain)).tier, 3));

  // Revoke a credential: the worker is disconnected and its credential is revoked.
  await open(page, `#/workers/${w.revoke}`, 'worker');
  await confirmAction(page, '[data-testid="action-revoke"]', { escapeFirst: true });
  await eventually('the revoke to reach the API', async () => {
    const account = await apiOk(`/api/admin/accounts/${encodeURIComponent(config.account)}`);
    const cred = (account.workers ?? []).find((x) => x.worker_id === w.revoke);
    assert.equal(cred?.revoked, true, JSON.stringify(cred));
    assert.equal((await record(w.revoke)).status, 'offline');
  });
}

async function accounts(page) {
  await open(page, '#/accounts', 'accounts');
  await eventually('accounts to match the API', async () => {
    const doc = await apiOk('/api/admin/accounts');
    const shown = await page.$$eval('[data-testid="accounts-table"] tbody tr', (trs) =>
      trs.map((tr) => ({ name: tr.dataset.account, keys: Number(tr.querySelector('[data-field="keys"]').textContent.replace(/\D/g, '')) })),
    );
    assert.deepEqual(shown, doc.accounts.map((a) => ({ name: a.name, keys: a.keys })));
  });
  await page.click(`[data-testid="accounts-table"] tr[data-account="${config.account}"] a`);
  await page.waitForSelector(`[data-testid="account-detail"][data-account="${config.account}"][data-loaded="true"]`);
  await checkLooks(page, 'accounts');
  // Create a key: shown once, and it works.
  await page.fill('#key-name', 'console-test');
  await confirmAction(page, '[data-testid="create-key"]', { escapeFirst: true });
  const key = await page.inputValue('[data-testid="new-key-value"]');
  assert.match(key, /^rma_/);
  const me = await api('/api/account', { key });
  assert.equal(me.status, 200, me.text);
  assert.equal(me.body.name, config.account);
  const prefix = key.split('_')[1];
  await page.waitForSelector(`[data-testid="keys-table"] tr[data-prefix="${prefix}"]`);
  // Revoke it: the gateway refuses it within seconds.
  await confirmAction(page, `[data-testid="keys-table"] tr[data-prefix="${prefix}"] [data-action="revoke-key"]`, { escapeFirst: true });
  await eventually('the revoked key to be refused', async () => assert.equal((await api('/api/account', { key })).status, 403), 10_000);
  await page.waitForSelector(`[data-testid="keys-table"] tr[data-prefix="${prefix}"][data-revoked="true"]`);
}

async function main() {
  screenshot = screenshots(config.artifacts);
  const watch = watcher();
  let current = null;
  await withBrowser(config.chromium, screenshot, () => current, async (browser) => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    watch.context(context, config.url);
    // The key goes in like an operator's: once, into the tab's session storage.
    await context.addInitScript((key) => sessionStorage.setItem('rma.adminKey', key), KEY);
    const page = await context.newPage();
    current = page;
    watch.page(page);
    // RMA_CONSOLE_STEPS=overview,accounts runs only those steps (when working on one page).
    const only = process.env.RMA_CONSOLE_STEPS?.split(',').filter(Boolean);
    for (const [name, step] of Object.entries({ overview, tasks, taskPage, deadLetters, history, worker, accounts })) {
      if (only && !only.includes(name)) continue;
      log(`---- ${name}`);
      await step(page);
    }
    assert.deepEqual(watch.found.outside, [], 'no request to another host');
    assert.deepEqual(watch.found.pageErrors, [], 'no page errors');
  });
  log(`LOAD TIMES: ${JSON.stringify(loadTimes)}`);
}

await runMain('console', main);
