// The console's pure logic (src/console.js): hash routes and filters, cursor paging, payload/result
// rendering, history shaping. No browser.
import { describe, expect, it } from 'vitest';
import {
  attemptRows,
  bodyView,
  bulkBody,
  formatBytes,
  formatHash,
  formatTime,
  hardwareRows,
  historyColumns,
  historyTotals,
  pageBack,
  pageForward,
  pagerState,
  parseHash,
  tasksPath,
  toApiTime,
  toLocalInput,
  trailFor,
  withFilters,
} from '../src/console.js';
import { getJson, PoolClient } from '../src/api.js';

describe('routes', () => {
  it('treats anything but #/... as the overview, so in-page anchors keep working', () => {
    for (const h of ['', '#', '#workers', '#/']) expect(parseHash(h).page).toBe('overview');
  });

  it('parses pages, ids and the filters each page keeps', () => {
    expect(parseHash('#/tasks?service=ocr&status=dead&bogus=1&cursor=abc')).toEqual({
      page: 'tasks',
      id: null,
      query: { service: 'ocr', status: 'dead', cursor: 'abc' },
    });
    expect(parseHash('#/tasks/123')).toEqual({ page: 'task', id: '123', query: {} });
    expect(parseHash('#/workers/gpu%2F1')).toEqual({ page: 'worker', id: 'gpu/1', query: {} });
    expect(parseHash('#/history?service=ocr&range=7d').query).toEqual({ service: 'ocr', range: '7d' });
    expect(parseHash('#/history?range=2y').query).toEqual({});
    expect(parseHash('#/tasks?status=nonsense').query).toEqual({});
    expect(parseHash('#/nowhere').page).toBe('not-found');
    expect(parseHash('#/workers').page).toBe('not-found');
  });

  it('formats hashes that parse back to the same state', () => {
    const states = [
      { page: 'tasks', id: null, query: { service: 'a b', status: 'dead', since: '2026-12-07T00:00:00.000Z' } },
      { page: 'task', id: '42', query: {} },
      { page: 'worker', id: 'w/1', query: {} },
      { page: 'dead-letters', id: null, query: {} },
      { page: 'history', id: null, query: { range: '24h', service: 'ocr' } },
      { page: 'accounts', id: null, query: {} },
    ];
    for (const s of states) expect(parseHash(formatHash(s))).toEqual(s);
    expect(formatHash({ page: 'overview' })).toBe('#/');
    expect(formatHash({ page: 'tasks', query: { status: '', service: 'x' } })).toBe('#/tasks?service=x');
  });
});

describe('task browser', () => {
  it('builds the list path from filters and the cursor', () => {
    expect(tasksPath({ service: 'ocr', account: 'alice', cursor: 'c1', junk: 'x', limit: '25' })).toBe(
      '/api/tasks?service=ocr&account=alice&cursor=c1&limit=25',
    );
    expect(parseHash('#/tasks?limit=5000').query).toEqual({});
    expect(parseHash('#/tasks?limit=20').query).toEqual({ limit: '20' });
    expect(tasksPath({})).toBe('/api/tasks?limit=50');
  });

  it('starts over from the first page when a filter changes', () => {
    expect(withFilters({ service: 'a', cursor: 'c' }, { status: 'dead' })).toEqual({ service: 'a', status: 'dead' });
    expect(withFilters({ service: 'a' }, { service: '' })).toEqual({});
  });

  it('pages forward and back along a trail of cursors', () => {
    let trail = [];
    trail = pageForward(trail, '', 'c1'); // page 1 -> 2
    expect(trail).toEqual(['']);
    trail = pageForward(trail, 'c1', 'c2'); // page 2 -> 3
    expect(pagerState(trail, 'c2', null)).toEqual({ number: 3, canBack: true, canFirst: true, canNext: false });
    let back = pageBack(trail);
    expect(back).toEqual({ trail: [''], cursor: 'c1' });
    back = pageBack(back.trail);
    expect(back).toEqual({ trail: [], cursor: '' });
    expect(pageForward([], 'c9', null)).toEqual([]); // no next page: nowhere to go
    // A reload on a later page: no trail, the number is unknown, "first page" is offered.
    expect(pagerState([], 'c5', 'c6')).toEqual({ number: null, canBack: true, canFirst: true, canNext: true });
    expect(pagerState([], '', 'c1')).toEqual({ number: 1, canBack: false, canFirst: false, canNext: true });
  });

  it('mends the trail after the browser went back or forward', () => {
    const trail = ['', 'c1', 'c2'];
    expect(trailFor(trail, 'c1')).toEqual(['']); // went back to page 2
    expect(trailFor(trail, '')).toEqual([]); // back to page 1
    expect(trailFor(trail, 'c3')).toEqual(trail); // the page after the trail
  });

  it('shows API times in datetime-local fields', () => {
    expect(toLocalInput('2026-12-07T10:30:00.000Z')).toBe('2026-12-07T10:30:00');
    expect(toLocalInput('2026-12-07T10:30:00.000Z', -60)).toBe('2026-12-07T11:30:00');
    expect(toLocalInput('1700000000')).toBe('2023-11-14T22:13:20');
    expect(toLocalInput('junk')).toBe('');
    expect(toApiTime(toLocalInput('2026-12-07T10:30:00.000Z', 120), 120)).toBe('2026-12-07T10:30:00.000Z');
  });

  it('turns a local datetime into UTC and passes API times through', () => {
    expect(toApiTime('')).toBe('');
    expect(toApiTime('2026-12-07T10:30')).toBe('2026-12-07T10:30:00.000Z');
    expect(toApiTime('2026-12-07T10:30', -60)).toBe('2026-12-07T09:30:00.000Z');
    expect(toApiTime('1700000000')).toBe('1700000000');
    expect(toApiTime('2026-12-07T10:30:00Z')).toBe('2026-12-07T10:30:00Z');
  });
});

describe('payload and result', () => {
  it('pretty-prints JSON with its size', () => {
    const v = bodyView({ task_id: '7', result: { a: [1, 2] }, content_type: 'application/json' }, 'result');
    expect(v.kind).toBe('json');
    expect(v.text).toBe('{\n  "a": [\n    1,\n    2\n  ]\n}');
    expect(v.bytes).toBe(JSON.stringify({ a: [1, 2] }).length);
    expect(v.href).toBe('/api/tasks/7/result');
  });

  it('shows text as text and counts UTF-8 bytes', () => {
    const v = bodyView({ task_id: '7', payload: 'héllo', payload_content_type: 'text/plain' }, 'payload');
    expect(v).toMatchObject({ kind: 'text', text: 'héllo', bytes: 6 });
  });

  it('shows binary and truncated bodies as size and type with a download', () => {
    const b = bodyView({ task_id: '7', result: 'AAECAw==', result_encoding: 'base64', content_type: 'image/png' }, 'result');
    expect(b).toMatchObject({ kind: 'binary', bytes: 4, type: 'image/png', href: '/api/tasks/7/result' });
    const t = bodyView({ task_id: '7', payload_truncated: true, payload_bytes: 300000 }, 'payload');
    expect(t).toMatchObject({ kind: 'binary', bytes: 300000, truncated: true, type: 'application/octet-stream' });
    expect(bodyView({ task_id: '7', result: null }, 'result').kind).toBe('none');
    expect(bodyView({ task_id: '7', payload: null }, 'payload').kind).toBe('json');
  });

  it('formats sizes', () => {
    expect(formatBytes(12)).toBe('12 B');
    expect(formatBytes(2048)).toBe('2.0 KiB');
    expect(formatBytes(300 * 1024)).toBe('300 KiB');
    expect(formatBytes(3 * 1024 * 1024)).toBe('3.0 MiB');
    expect(formatBytes(undefined)).toBe('—');
  });

  it('orders the attempt log and measures each attempt', () => {
    const rows = attemptRows([
      { attempt: 2, started_at: '2026-12-07T00:00:10Z', ended_at: null, outcome: 'running' },
      { attempt: 1, started_at: '2026-12-07T00:00:00Z', ended_at: '2026-12-07T00:00:01.5Z', outcome: 'failed' },
    ]);
    expect(rows.map((r) => [r.attempt, r.duration_ms])).toEqual([
      [1, 1500],
      [2, null],
    ]);
    expect(attemptRows(undefined)).toEqual([]);
  });

  it('formats times in UTC', () => {
    expect(formatTime('2026-12-07T15:04:05.123Z')).toBe('2026-12-07 15:04:05 UTC');
    expect(formatTime(null)).toBe('—');
  });
});

describe('dead letters and workers', () => {
  it('builds bulk bodies for a group or for everything', () => {
    expect(bulkBody({ service: 'ocr', error_code: 'timeout', count: 3 })).toEqual({ limit: 1000, service: 'ocr', error_code: 'timeout' });
    expect(bulkBody(null, 10)).toEqual({ limit: 10 });
  });

  it('lists hardware the worker reported', () => {
    const rows = hardwareRows({ cpu_cores: 8, cpu_model: 'EPYC', ram_gb: 32, has_gpu: true, gpu_type: 'A100', gpu_memory_gb: 80, gpu_count: 2, os: 'linux', arch: 'x86_64' });
    expect(rows).toEqual([
      ['CPU', 'EPYC · 8 cores'],
      ['RAM', '32 GB'],
      ['GPU', '2 × A100 · 80 GB'],
      ['OS', 'linux / x86_64'],
    ]);
  });
});

describe('history', () => {
  const doc = {
    service: 'ocr',
    range: '1h',
    step_s: 60,
    points: [
      { at: '2026-12-07T10:01:00Z', submitted: 4, completed: 3, failed: 1, dead: 1, throughput_per_s: 0.05, run_time_p50_ms: 10, run_time_p99_ms: 40, queue_wait_p50_ms: 1, queue_wait_p99_ms: 2, queue_depth: 5 },
      { at: '2026-12-07T10:00:00Z', submitted: 0, completed: 0, failed: 0, dead: 0, throughput_per_s: 0, run_time_p50_ms: null, run_time_p99_ms: null, queue_wait_p50_ms: null, queue_wait_p99_ms: null, queue_depth: 0 },
    ],
  };

  it('shapes points into chart columns, oldest first, gaps as null', () => {
    const c = historyColumns(doc);
    expect(c.x).toEqual([Date.parse('2026-12-07T10:00:00Z') / 1000, Date.parse('2026-12-07T10:01:00Z') / 1000]);
    expect(c.completed).toEqual([0, 3]);
    expect(c.errors).toEqual([0, 2]);
    expect(c.runP99).toEqual([null, 40]);
    expect(c.depth).toEqual([0, 5]);
    expect(c.throughput).toEqual([0, 0.05]);
    expect(historyTotals(c)).toEqual({ submitted: 4, completed: 3, errors: 2, maxDepth: 5, maxRunP99: 40 });
  });

  it('copes with an empty or missing document', () => {
    expect(historyColumns(null).x).toEqual([]);
    expect(historyTotals(historyColumns({ points: [] })).submitted).toBe(0);
  });
});

describe('console requests', () => {
  it('polls only health and services under a console page, and never the board', async () => {
    const urls = [];
    const fetchImpl = async (url) => {
      urls.push(url);
      const body = url === '/health' ? { status: 'ok', broker: 'reachable' } : { services: [] };
      return { status: 200, text: async () => JSON.stringify(body) };
    };
    const client = new PoolClient({ fetchImpl, keyStore: { get: () => null, set() {} } });
    const r = await client.poll(undefined, ['services']);
    expect(urls.sort()).toEqual(['/api/admin/services', '/health']);
    expect(r.state).toBe('live');
    expect(r.data.workers).toBeNull();
    expect(r.data.stats).toBeNull();
    expect(r.data.services).toEqual({ services: [] });
  });

  it('sends actions as JSON with the admin key', async () => {
    const calls = [];
    const fetchImpl = async (url, init) => {
      calls.push({ url, init });
      return { status: 200, text: async () => '{"ok":true}' };
    };
    const client = new PoolClient({ fetchImpl, keyStore: { get: () => 'k1', set() {} } });
    const r = await client.request('/api/admin/tasks/retry', { method: 'POST', body: { service: 'ocr' } });
    expect(r).toMatchObject({ kind: 'ok', body: { ok: true } });
    expect(calls[0].url).toBe('/api/admin/tasks/retry');
    expect(calls[0].init.method).toBe('POST');
    expect(calls[0].init.headers).toMatchObject({ 'X-API-Key': 'k1', 'Content-Type': 'application/json' });
    expect(JSON.parse(calls[0].init.body)).toEqual({ service: 'ocr' });
    const g = await getJson(fetchImpl, '/x');
    expect(calls[1].init.method).toBeUndefined();
    expect(g.kind).toBe('ok');
  });
});
