// Data shaping rules of the dashboard (src/model.js), on hand-written admin API documents.
import { describe, expect, it } from 'vitest';
import {
  accountRows,
  DEFAULT_BOARD_QUERY,
  fallbackNote,
  filterWorkers,
  formatCredits,
  formatAge,
  formatDuration,
  formatMs,
  formatRate,
  healthCounts,
  historySeries,
  leaderboardBoard,
  leaderboardPath,
  rankContributors,
  serviceRows,
  sortWorkers,
  tierBars,
  trustLabel,
} from '../src/model.js';

const worker = (over) => ({
  worker_id: over.name,
  tier: 2,
  simulated: false,
  services: [],
  status: 'idle',
  health: 'healthy',
  load: 0,
  in_flight: 0,
  slots: 1,
  tasks_done: 0,
  tasks_failed: 0,
  busy_seconds: 0,
  last_heartbeat_age_s: 0.1,
  ...over,
});

const workers = [
  worker({ name: 'gpu-box', tier: 1, services: ['vllm', 'embeddings'], tasks_done: 5, busy_seconds: 2, slots: 4, in_flight: 1, status: 'busy' }),
  worker({ name: 'office-1', tier: 2, services: ['ocr'], tasks_done: 9, busy_seconds: 1.5 }),
  worker({ name: 'pi-1', tier: 3, services: ['chromadb'], tasks_done: 5, busy_seconds: 7, simulated: true }),
  worker({ name: 'pi-2', tier: 3, services: ['chromadb'], status: 'offline', health: 'offline', last_heartbeat_age_s: 9 }),
];

describe('tierBars', () => {
  it('counts live workers per tier from the stats document and scales bars to the largest tier', () => {
    const stats = { workers: { by_tier: { 1: 1, 2: 1, 3: 2 } } };
    const bars = tierBars(stats, workers);
    expect(bars.map((b) => [b.tier, b.live, b.listed])).toEqual([
      [1, 1, 1],
      [2, 1, 1],
      [3, 2, 2],
    ]);
    expect(bars.map((b) => b.fraction)).toEqual([0.5, 0.5, 1]);
  });

  it('draws empty bars for an empty pool', () => {
    const bars = tierBars({ workers: { by_tier: { 1: 0, 2: 0, 3: 0 } } }, []);
    expect(bars.every((b) => b.live === 0 && b.fraction === 0)).toBe(true);
  });
});

describe('healthCounts', () => {
  it('defaults missing counts to zero', () => {
    expect(healthCounts({ workers: { by_health: { healthy: 2 } } })).toEqual({ healthy: 2, late: 0, offline: 0 });
    expect(healthCounts(undefined)).toEqual({ healthy: 0, late: 0, offline: 0 });
  });
});

describe('sortWorkers', () => {
  const names = (list) => list.map((w) => w.name);

  it('sorts numbers numerically in both directions, ties broken by name', () => {
    expect(names(sortWorkers(workers, { key: 'tasks_done', dir: 'desc' }))).toEqual(['office-1', 'gpu-box', 'pi-1', 'pi-2']);
    expect(names(sortWorkers(workers, { key: 'tasks_done', dir: 'asc' }))).toEqual(['pi-2', 'gpu-box', 'pi-1', 'office-1']);
  });

  it('sorts health by severity and text case-insensitively', () => {
    expect(names(sortWorkers(workers, { key: 'health', dir: 'desc' }))[0]).toBe('pi-2');
    const mixed = [worker({ name: 'b' }), worker({ name: 'A' }), worker({ name: 'c10' }), worker({ name: 'c9' })];
    expect(names(sortWorkers(mixed, { key: 'name', dir: 'asc' }))).toEqual(['A', 'b', 'c9', 'c10']);
  });

  it('sorts in-flight by how full the worker is and does not modify its input', () => {
    const copy = [...workers];
    expect(names(sortWorkers(workers, { key: 'in_flight', dir: 'desc' }))[0]).toBe('gpu-box');
    expect(workers).toEqual(copy);
  });
});

describe('trustLabel', () => {
  it('shows trusted, else the reputation state, else a dash', () => {
    expect(trustLabel(worker({ reputation: { state: 'good', trusted: true } }))).toBe('trusted');
    expect(trustLabel(worker({ reputation: { state: 'quarantined', trusted: false } }))).toBe('quarantined');
    expect(trustLabel(worker({}))).toBe('—');
    expect(trustLabel(worker({ reputation: 'odd' }))).toBe('—');
  });

  it('sorts the most trusted first and finds workers by state', () => {
    const list = [
      worker({ name: 'q', reputation: { state: 'quarantined' } }),
      worker({ name: 't', reputation: { state: 'good', trusted: true } }),
      worker({ name: 'p', reputation: { state: 'probation' } }),
    ];
    expect(sortWorkers(list, { key: 'reputation', dir: 'asc' }).map((w) => w.name)).toEqual(['t', 'p', 'q']);
    expect(filterWorkers(list, { text: 'quarantined' }).map((w) => w.name)).toEqual(['q']);
  });
});

describe('filterWorkers', () => {
  it('matches every word against name, id, services, status and tier label', () => {
    expect(filterWorkers(workers, { text: 'chromadb' }).map((w) => w.name)).toEqual(['pi-1', 'pi-2']);
    expect(filterWorkers(workers, { text: 'chromadb offline' }).map((w) => w.name)).toEqual(['pi-2']);
    expect(filterWorkers(workers, { text: 'GPU' }).map((w) => w.name)).toEqual(['gpu-box']);
    expect(filterWorkers(workers, { text: 'simulated' }).map((w) => w.name)).toEqual(['pi-1']);
    expect(filterWorkers(workers, { text: 'nothing-like-this' })).toEqual([]);
  });

  it('matches the contributor account and the key fingerprint, and sorts by them', () => {
    const owned = [
      worker({ name: 'w1', account: 'alice', key_fingerprint: 'Ab3dE9xY' }),
      worker({ name: 'w2', account: 'bob' }),
      worker({ name: 'w3' }),
    ];
    expect(filterWorkers(owned, { text: 'alice' }).map((w) => w.name)).toEqual(['w1']);
    expect(filterWorkers(owned, { text: 'ab3de9' }).map((w) => w.name)).toEqual(['w1']);
    expect(sortWorkers(owned, { key: 'account', dir: 'desc' }).map((w) => w.name)).toEqual(['w2', 'w1', 'w3']);
  });

  it('filters by exact tier and health', () => {
    expect(filterWorkers(workers, { tier: '3' }).map((w) => w.name)).toEqual(['pi-1', 'pi-2']);
    expect(filterWorkers(workers, { tier: '3', health: 'healthy' }).map((w) => w.name)).toEqual(['pi-1']);
    expect(filterWorkers(workers, {})).toHaveLength(4);
  });
});

describe('rankContributors', () => {
  it('ranks by tasks completed, compute time breaking ties, equal values sharing a rank', () => {
    const ranked = rankContributors(workers, 'tasks');
    expect(ranked.map((r) => [r.rank, r.worker.name])).toEqual([
      [1, 'office-1'],
      [2, 'pi-1'],
      [2, 'gpu-box'],
      [4, 'pi-2'],
    ]);
    expect(ranked[0].share).toBeCloseTo(9 / 19);
  });

  it('ranks by compute time', () => {
    expect(rankContributors(workers, 'busy').map((r) => r.worker.name)).toEqual(['pi-1', 'gpu-box', 'office-1', 'pi-2']);
  });

  it('gives zero shares when nothing was done yet', () => {
    expect(rankContributors([worker({ name: 'a' })], 'tasks')[0].share).toBe(0);
  });

  it('takes the leaderboard\'s name for compute time', () => {
    expect(rankContributors(workers, 'compute').map((r) => r.worker.name)).toEqual(['pi-1', 'gpu-box', 'office-1', 'pi-2']);
  });
});

// GET /api/leaderboard as docs/http-api.md shows it, and getJson's classification of answers.
const board = {
  period: 'week',
  by: 'credits',
  accounts: [
    {
      rank: 1,
      account: 'alice',
      credits: 6,
      tasks: 3,
      compute_s: 4,
      workers: [
        { worker_id: 'w2', name: 'laptop', credits: 1.5, tasks: 2, compute_s: 1 },
        { worker_id: 'w1', name: 'gpu-box', credits: 4.5, tasks: 1, compute_s: 3 },
      ],
    },
    { rank: 2, account: 'bob', credits: 2, tasks: 5, compute_s: 2, workers: [{ worker_id: 'w3', name: '', credits: 2, tasks: 5, compute_s: 2 }] },
  ],
};
const ok = (body) => ({ kind: 'ok', status: 200, body, message: '' });
const failed = (kind, status, message = `HTTP ${status}`) => ({ kind, status, body: null, message });

describe('leaderboardPath', () => {
  it('asks for the period and the measure', () => {
    expect(leaderboardPath({ period: 'day', by: 'compute' })).toBe('/api/leaderboard?period=day&by=compute');
    expect(leaderboardPath()).toBe('/api/leaderboard?period=week&by=credits');
    expect(DEFAULT_BOARD_QUERY).toEqual({ period: 'week', by: 'credits' });
  });
});

describe('leaderboardBoard', () => {
  const query = { period: 'week', by: 'credits' };

  it('shows accounts for an answer with accounts, even none', () => {
    expect(leaderboardBoard(ok(board), query)).toEqual({ mode: 'accounts', doc: board, query, stale: false });
    expect(leaderboardBoard(ok({ period: 'day', by: 'tasks', accounts: [] }), query).mode).toBe('accounts');
  });

  it('falls back to the workers, saying why, when the pool has no accounts board', () => {
    const noDb = failed('error', 409, 'accounts need a database: start the broker with --db');
    expect(leaderboardBoard(noDb, query)).toEqual({ mode: 'workers', reason: 'no-database', message: noDb.message });
    expect(leaderboardBoard(failed('error', 404), query).reason).toBe('no-route');
    expect(leaderboardBoard(failed('auth', 401), query).reason).toBe('needs-key');
    expect(leaderboardBoard(failed('network', 0, 'Failed to fetch'), query).reason).toBe('error');
    expect(leaderboardBoard(ok({ something: 'else' }), query).reason).toBe('error');
    expect(leaderboardBoard(undefined, query).mode).toBe('workers');
  });

  it('keeps what it showed when the leaderboard was not asked', () => {
    const noDb = { mode: 'workers', reason: 'no-database', message: '' };
    expect(leaderboardBoard(null, query, noDb)).toBe(noDb);
    expect(leaderboardBoard(null, query)).toMatchObject({ mode: 'workers', reason: 'error' });
  });

  it('keeps the last accounts through a transient failure, marked stale, but not through a 409', () => {
    const before = leaderboardBoard(ok(board), query);
    for (const answer of [failed('network', 0), failed('unavailable', 503), failed('error', 500)]) {
      expect(leaderboardBoard(answer, { period: 'day', by: 'credits' }, before)).toEqual({ ...before, stale: true });
    }
    expect(leaderboardBoard(failed('error', 409), query, before).mode).toBe('workers');
    // Without accounts before, a transient failure is the workers board.
    expect(leaderboardBoard(failed('network', 0), query, { mode: 'workers', reason: 'no-database' }).mode).toBe('workers');
  });
});

describe('fallbackNote', () => {
  it('says why there are no accounts and what is shown instead', () => {
    expect(fallbackNote('no-database')).toMatch(/^Accounts need the broker’s database.*showing the connected workers/);
    expect(fallbackNote('no-route')).toMatch(/no leaderboard/);
    expect(fallbackNote('needs-key')).toMatch(/private/);
    expect(fallbackNote('error')).toMatch(/could not be read/);
  });
});

describe('accountRows', () => {
  it('keeps the API\'s order and ranks, with shares of the listed total and machines biggest first', () => {
    const rows = accountRows(board, 'credits');
    expect(rows.map((r) => [r.rank, r.account, r.credits, r.tasks, r.computeS])).toEqual([
      [1, 'alice', 6, 3, 4],
      [2, 'bob', 2, 5, 2],
    ]);
    expect(rows[0].share).toBeCloseTo(6 / 8);
    expect(rows[0].workers.map((w) => [w.workerId, w.name, w.credits])).toEqual([
      ['w1', 'gpu-box', 4.5],
      ['w2', 'laptop', 1.5],
    ]);
    expect(rows[0].workers[0].share).toBeCloseTo(4.5 / 8);
    expect(rows[1].workers[0].name).toBe('w3'); // no name: its id
  });

  it('orders machines and shares by the chosen measure', () => {
    const rows = accountRows(board, 'tasks');
    expect(rows[0].workers.map((w) => w.workerId)).toEqual(['w2', 'w1']);
    expect(rows[1].share).toBeCloseTo(5 / 8);
    expect(accountRows(board, 'compute')[0].share).toBeCloseTo(4 / 6);
  });

  it('draws nothing for no document', () => {
    expect(accountRows(null)).toEqual([]);
  });
});

describe('serviceRows', () => {
  const doc = {
    services: [
      { name: 'vllm', available: true, providers: 1, healthy_providers: 1, queue_depth: 0, counters: { submitted: 5, completed: 5 } },
      { name: 'rag', available: false, providers: 0, queue_depth: 2, counters: { submitted: 2 } },
      { name: 'cpu-worker', generic: true, max_tier: 2, available: true, providers: 0, queue_depth: 0 },
      { name: 'ner', available: false, providers: 0, queue_depth: 0 },
      { name: 'chromadb', available: true, providers: 1, queue_depth: 0 },
    ],
  };

  it('names providers, counting generic services by tier, and marks services that would answer 503', () => {
    const rows = serviceRows(doc, workers);
    const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
    expect(byName.vllm.providerNames).toEqual(['gpu-box']);
    expect(byName['cpu-worker'].providerNames).toEqual(['gpu-box', 'office-1']);
    expect(byName['cpu-worker'].providers).toBe(2);
    // The offline pi-2 no longer provides chromadb; names are in order whatever the API's order.
    expect(byName.chromadb.providerNames).toEqual(['pi-1']);
    const reversed = serviceRows(doc, [...workers].reverse());
    expect(reversed.find((r) => r.name === 'cpu-worker').providerNames).toEqual(['gpu-box', 'office-1']);
    expect(byName.rag.available).toBe(false);
    expect(byName.rag.queueDepth).toBe(2);
  });

  it('lists services with work or providers first, the deepest queue first', () => {
    expect(serviceRows(doc, workers).map((r) => r.name)).toEqual(['rag', 'chromadb', 'cpu-worker', 'vllm', 'ner']);
  });
});

describe('historySeries', () => {
  const history = [
    { minute: '2026-11-22T10:00:00.000Z', submitted: 3, completed: 2, failed: 1, queue_wait_p50_ms: 1, run_time_p50_ms: 10, run_time_p99_ms: 20 },
    { minute: '2026-11-22T10:03:00.000Z', submitted: 1, completed: 1, failed: 0, queue_wait_p50_ms: 2, run_time_p50_ms: 11, run_time_p99_ms: 30 },
  ];

  it('fills quiet minutes with zero counts and no latency', () => {
    const h = historySeries(history);
    expect(h.x).toEqual([0, 1, 2, 3].map((i) => Date.parse('2026-11-22T10:00:00Z') / 1000 + 60 * i));
    expect(h.completed).toEqual([2, 0, 0, 1]);
    expect(h.failed).toEqual([1, 0, 0, 0]);
    expect(h.runP99).toEqual([20, null, null, 30]);
  });

  it('runs up to now, but never more than an hour past the data', () => {
    const now = Date.parse('2026-11-22T10:05:30Z');
    expect(historySeries(history, now).x).toHaveLength(6);
    const far = Date.parse('2026-11-23T10:00:00Z');
    expect(historySeries(history, far).x).toHaveLength(64);
  });

  it('is empty without history', () => {
    expect(historySeries([], Date.now()).x).toEqual([]);
  });
});

describe('formatting', () => {
  it('formats durations, ages, rates and latencies for people', () => {
    expect(formatDuration(0)).toBe('0 s');
    expect(formatDuration(0.001)).toBe('< 0.1 s');
    expect(formatDuration(4.24)).toBe('4.2 s');
    expect(formatDuration(185)).toBe('3 m 05 s');
    expect(formatDuration(7380)).toBe('2 h 03 m');
    expect(formatDuration(3 * 86400 + 4 * 3600)).toBe('3 d 04 h');
    expect(formatAge(0.25)).toBe('0.3 s ago');
    expect(formatAge(42)).toBe('42 s ago');
    expect(formatRate(0)).toBe('0/s');
    expect(formatRate(0.05)).toBe('3.0/min');
    expect(formatRate(2.5)).toBe('2.50/s');
    expect(formatMs(0.256)).toBe('256 µs');
    expect(formatMs(212.9)).toBe('213 ms');
    expect(formatMs(1500)).toBe('1.50 s');
  });

  it('formats credits with two decimals, and a sliver as more than nothing', () => {
    expect(formatCredits(0)).toBe('0.00');
    expect(formatCredits(0.001)).toBe('< 0.01');
    expect(formatCredits(1.016)).toBe('1.02');
    expect(formatCredits(1234.5)).toBe('1,234.50');
    expect(formatCredits(-2)).toBe('-2.00');
  });
});
