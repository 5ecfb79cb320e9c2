// Page load times of the operator console on a large pool: console_scale_test.cc starts a pool of
// 1,000 workers with 100,000 tasks in its history and runs this script with one JSON argument
//   { "url", "chromium", "artifacts", "workers", "tasks", "task_id", "worker_id", "service",
//     "limit_ms" }.
// Every page is loaded five times in a fresh tab (navigation to the page's data on screen: its
// [data-loaded="true"]); the median of each is printed as a table for docs/benchmarks.md and must be
// under limit_ms. Nothing sleeps; every wait has a deadline.
import assert from 'node:assert/strict';
import { log, runMain, screenshots, withBrowser } from './browser_support.mjs';

const config = JSON.parse(process.argv[2] ?? '{}');
const RUNS = 5;

const PAGES = [
  ['overview', '#/'],
  ['tasks', '#/tasks'],
  ['tasks', `#/tasks?service=${config.service}&status=dead`],
  ['tasks', `#/tasks?worker=${config.worker_id}`],
  ['task', `#/tasks/${config.task_id}`],
  ['dead-letters', '#/dead-letters'],
  ['history', `#/history?service=${config.service}&range=1h`],
  ['history', '#/history?range=7d'],
  ['worker', `#/workers/${config.worker_id}`],
  ['accounts', '#/accounts'],
];

async function main() {
  const screenshot = screenshots(config.artifacts);
  let current = null;
  const rows = [];
  await withBrowser(config.chromium, screenshot, () => current, async (browser) => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    for (const [name, hash] of PAGES) {
      const times = [];
      for (let i = 0; i < RUNS; i++) {
        const page = await context.newPage();
        current = page;
        const started = Date.now();
        await page.goto(`${config.url}/${hash}`);
        await page.waitForSelector(`[data-page="${name}"][data-loaded="true"]`, { timeout: 15_000 });
        times.push(Date.now() - started);
        if (i === RUNS - 1) await screenshot(page, name);
        await page.close();
      }
      times.sort((a, b) => a - b);
      rows.push({ page: name, hash, median_ms: times[Math.floor(RUNS / 2)], max_ms: times[RUNS - 1] });
      log(`${hash}: ${times.join(', ')} ms`);
    }
  });
  console.log(`\nconsole page loads, ${config.workers} workers, ${config.tasks} tasks in history (median of ${RUNS}):`);
  console.log('| page | address | median ms | max ms |\n|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.page} | \`${r.hash}\` | ${r.median_ms} | ${r.max_ms} |`);
  for (const r of rows) assert.ok(r.median_ms < config.limit_ms, `${r.hash} took ${r.median_ms} ms (median), limit ${config.limit_ms} ms`);
}

await runMain('console scale', main);
