// Data shaping for the dashboard: turns the admin API's documents (broker/admin.cc, docs/http-api.md)
// into what the components draw. Pure functions only — no DOM, no fetch, no clock unless passed in —
// so every rule here is unit-tested in test/model.test.js.

export const TIERS = [
  { tier: 1, label: 'GPU', description: 'Tier 1 · GPU' },
  { tier: 2, label: 'CPU', description: 'Tier 2 · CPU / service' },
  { tier: 3, label: 'Storage', description: 'Tier 3 · storage / data' },
];

export const HEALTHS = ['healthy', 'late', 'offline'];

export function tierLabel(tier) {
  const t = TIERS.find((x) => x.tier === tier);
  return t ? t.label : `Tier ${tier}`;
}

// Live workers per tier, from the stats document (the broker's own count), with each tier's share of
// the largest tier so bars compare at a glance. `listed` also counts offline workers still listed.
export function tierBars(stats, workers = []) {
  const byTier = stats?.workers?.by_tier ?? {};
  const rows = TIERS.map((t) => ({
    ...t,
    live: Number(byTier[String(t.tier)] ?? 0),
    listed: workers.filter((w) => w.tier === t.tier).length,
  }));
  const max = Math.max(1, ...rows.map((r) => r.live));
  return rows.map((r) => ({ ...r, fraction: r.live / max }));
}

export function healthCounts(stats) {
  const h = stats?.workers?.by_health ?? {};
  return { healthy: h.healthy ?? 0, late: h.late ?? 0, offline: h.offline ?? 0 };
}

// A worker's reputation as the list shows it (docs/architecture.md, "Reputation"): "trusted" when an
// admin vouched for it, else its state (probation, good, suspect, quarantined, banned); "—" when the
// broker sent none.
export function trustLabel(w) {
  const r = w?.reputation;
  if (!r || typeof r !== 'object') return '—';
  if (r.trusted) return 'trusted';
  return r.state || '—';
}

// Best first: how far a worker is trusted, for sorting.
const TRUST_ORDER = { trusted: 0, good: 1, probation: 2, suspect: 3, quarantined: 4, banned: 5 };

// ---- Worker list: sorting and filtering ----------------------------------------------------------

const HEALTH_ORDER = { healthy: 0, late: 1, offline: 2 };
const STATUS_ORDER = { busy: 0, full: 1, idle: 2, draining: 3, offline: 4 };

// Column key -> value to compare. Numbers compare as numbers, the rest as case-insensitive text.
const SORT_VALUES = {
  health: (w) => HEALTH_ORDER[w.health] ?? 9,
  name: (w) => w.name ?? '',
  worker_id: (w) => w.worker_id ?? '',
  account: (w) => w.account ?? '',
  key: (w) => w.key ?? '',
  tier: (w) => w.tier ?? 9,
  simulated: (w) => (w.simulated ? 1 : 0),
  services: (w) => (w.services ?? []).join(', '),
  status: (w) => STATUS_ORDER[w.status] ?? 9,
  reputation: (w) => TRUST_ORDER[trustLabel(w)] ?? 9,
  load: (w) => w.load ?? 0,
  in_flight: (w) => (w.slots ? (w.in_flight ?? 0) / w.slots : 0),
  tasks_done: (w) => w.tasks_done ?? 0,
  last_heartbeat: (w) => w.last_heartbeat_age_s ?? Infinity,
};

export const SORT_KEYS = Object.keys(SORT_VALUES);

// One collator for every comparison: localeCompare with options builds a new one per call, which
// made sorting a thousand workers take most of a second.
const COLLATOR = new Intl.Collator(undefined, { sensitivity: 'base', numeric: true });

function compareValues(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return COLLATOR.compare(String(a), String(b));
}

// A stable sort by one column; ties fall back to name then id so rows never jump between refreshes.
export function sortWorkers(workers, { key = 'name', dir = 'asc' } = {}) {
  const value = SORT_VALUES[key] ?? SORT_VALUES.name;
  const sign = dir === 'desc' ? -1 : 1;
  return workers
    .map((w, i) => ({ w, i }))
    .sort(
      (x, y) =>
        sign * compareValues(value(x.w), value(y.w)) ||
        compareValues(x.w.name ?? '', y.w.name ?? '') ||
        compareValues(x.w.worker_id ?? '', y.w.worker_id ?? '') ||
        x.i - y.i,
    )
    .map((x) => x.w);
}

// The direction a column sorts in when first chosen: biggest first for counts, A-Z for names.
export function defaultDirection(key) {
  return ['load', 'in_flight', 'tasks_done', 'simulated'].includes(key) ? 'desc' : 'asc';
}

// Free text (every word must match the name, id, a service, the status, the health or the tier's
// label) plus exact tier and health choices ('' means any).
export function filterWorkers(workers, { text = '', tier = '', health = '' } = {}) {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  return workers.filter((w) => {
    if (tier !== '' && String(w.tier) !== String(tier)) return false;
    if (health !== '' && w.health !== health) return false;
    if (words.length === 0) return true;
    const haystack = [
      w.name,
      w.worker_id,
      w.account,
      w.key_fingerprint,
      w.status,
      w.health,
      trustLabel(w) === '—' ? '' : trustLabel(w),
      tierLabel(w.tier),
      w.simulated ? 'simulated' : '',
      ...(w.services ?? []),
    ]
      .filter(Boolean)
      .join(' ')
      .toLowerCase();
    return words.every((word) => haystack.includes(word));
  });
}

// ---- Contributors --------------------------------------------------------------------------------

// Workers ranked by what they donated: tasks completed or busy (compute) seconds, the other one
// breaking ties. Equal values share a rank (1, 2, 2, 4). Offline workers still listed keep their place:
// they did the work.
// `by` is 'tasks' or 'busy' (also spelt 'compute', the leaderboard's name for it).
export function rankContributors(workers, by = 'tasks') {
  const busy = by === 'busy' || by === 'compute';
  const primary = busy ? (w) => w.busy_seconds ?? 0 : (w) => w.tasks_done ?? 0;
  const secondary = busy ? (w) => w.tasks_done ?? 0 : (w) => w.busy_seconds ?? 0;
  const total = workers.reduce((s, w) => s + primary(w), 0);
  const sorted = [...workers].sort(
    (a, b) =>
      primary(b) - primary(a) ||
      secondary(b) - secondary(a) ||
      compareValues(a.name ?? '', b.name ?? '') ||
      compareValues(a.worker_id ?? '', b.worker_id ?? ''),
  );
  let rank = 0;
  return sorted.map((w, i) => {
    if (i === 0 || primary(w) !== primary(sorted[i - 1])) rank = i + 1;
    return { rank, worker: w, value: primary(w), share: total > 0 ? primary(w) / total : 0 };
  });
}

// ---- Leaderboard (accounts) ----------------------------------------------------------------------

// The board's pickers. `by` values are the API's (GET /api/leaderboard?period&by); the workers-only
// fallback has no credits (they need the database) and ranks by its own two measures.
export const LEADERBOARD_PERIODS = [
  { value: 'day', label: 'Today' },
  { value: 'week', label: 'This week' },
  { value: 'all', label: 'All time' },
];
export const LEADERBOARD_MEASURES = [
  { value: 'credits', label: 'Credits earned', accountsOnly: true },
  { value: 'tasks', label: 'Tasks completed' },
  { value: 'compute', label: 'Compute time' },
];
export const DEFAULT_BOARD_QUERY = { period: 'week', by: 'credits' };

export function leaderboardPath({ period, by } = DEFAULT_BOARD_QUERY) {
  return `/api/leaderboard?period=${encodeURIComponent(period)}&by=${encodeURIComponent(by)}`;
}

// What the contributors board shows, from one classified GET /api/leaderboard answer (api.js getJson,
// plus the query it asked) and what the board showed before:
//   { mode: 'accounts', doc, query, stale }   the accounts board (stale: a transient failure, the
//                                             last good answer kept rather than flipping to workers)
//   { mode: 'workers', reason, message }      the pool has no accounts board: rank the workers
// 409 is a broker without a database, 404 a gateway without the route, 401/403 --private-leaderboard
// without a key the gateway takes. A null answer (not asked this time, api.js) keeps what was shown.
export function leaderboardBoard(answer, query, previous = null) {
  if (answer === null && previous) return previous;
  if (answer?.kind === 'ok' && Array.isArray(answer.body?.accounts)) {
    return { mode: 'accounts', doc: answer.body, query, stale: false };
  }
  const status = answer?.status ?? 0;
  const transient = !answer || answer.kind === 'network' || answer.kind === 'unavailable' || status >= 500;
  if (transient && previous?.mode === 'accounts') return { ...previous, stale: true };
  let reason = 'error';
  if (status === 409) reason = 'no-database';
  else if (status === 404) reason = 'no-route';
  else if (answer?.kind === 'auth') reason = 'needs-key';
  return { mode: 'workers', reason, message: answer?.message ?? '' };
}

// The short note above the workers-only board: why there are no accounts.
export function fallbackNote(reason) {
  const why = {
    'no-database': 'Accounts need the broker’s database, and this pool runs without one',
    'no-route': 'This gateway has no leaderboard',
    'needs-key': 'The leaderboard is private and the gateway took no key for it',
  }[reason];
  return `${why ?? 'The leaderboard could not be read'}: showing the connected workers, ranked by what they did since they joined.`;
}

const ACCOUNT_VALUES = {
  credits: (a) => Number(a.credits) || 0,
  tasks: (a) => Number(a.tasks) || 0,
  compute: (a) => Number(a.compute_s) || 0,
};

// The API's ranked accounts for drawing: its order and ranks as given (it ranks), each account's
// share of the listed total of `by`, and its workers beneath it, biggest first by the same measure.
export function accountRows(doc, by = doc?.by ?? 'credits') {
  const value = ACCOUNT_VALUES[by] ?? ACCOUNT_VALUES.credits;
  const accounts = doc?.accounts ?? [];
  const total = accounts.reduce((s, a) => s + value(a), 0);
  const share = (x) => (total > 0 ? value(x) / total : 0);
  return accounts.map((a) => ({
    rank: a.rank,
    account: a.account,
    credits: Number(a.credits) || 0,
    tasks: Number(a.tasks) || 0,
    computeS: Number(a.compute_s) || 0,
    share: share(a),
    workers: [...(a.workers ?? [])]
      .sort(
        (x, y) =>
          value(y) - value(x) ||
          compareValues(x.name ?? '', y.name ?? '') ||
          compareValues(x.worker_id ?? '', y.worker_id ?? ''),
      )
      .map((w) => ({
        workerId: w.worker_id,
        name: w.name || w.worker_id,
        credits: Number(w.credits) || 0,
        tasks: Number(w.tasks) || 0,
        computeS: Number(w.compute_s) || 0,
        share: share(w),
      })),
  }));
}

// ---- Services ------------------------------------------------------------------------------------

// Whether a worker can take a service's work now: live and not draining, and either advertising it or,
// for a generic service (gpu-worker, cpu-worker, processing), of a tier allowed to take it.
function provides(worker, service) {
  if (worker.status === 'offline' || worker.status === 'draining') return false;
  if (service.generic) return worker.tier <= (service.max_tier ?? 0);
  return (worker.services ?? []).includes(service.name);
}

// One row per known service: who provides it, its queue, and what a synchronous call would get now
// (a service without a live provider answers 503). Services with work or providers come first.
export function serviceRows(servicesDoc, workers = []) {
  const rows = (servicesDoc?.services ?? []).map((s) => {
    const providers = workers
      .filter((w) => provides(w, s))
      .map((w) => w.name || w.worker_id)
      .sort((a, b) => compareValues(a, b));
    return {
      name: s.name,
      generic: !!s.generic,
      maxTier: s.max_tier ?? null,
      // The broker counts advertised providers; generic services are served by tier instead.
      providers: s.generic ? providers.length : (s.providers ?? 0),
      healthyProviders: s.healthy_providers ?? 0,
      providerNames: providers,
      queueDepth: s.queue_depth ?? 0,
      inFlight: s.in_flight ?? 0,
      oldestWaitS: s.oldest_wait_s ?? 0,
      submitted: s.counters?.submitted ?? 0,
      completed: s.counters?.completed ?? 0,
      failed: s.counters?.failed ?? 0,
      runP50: s.run_time_ms?.p50 ?? 0,
      available: !!s.available,
    };
  });
  const active = (r) => r.queueDepth + r.inFlight + r.submitted + r.providers > 0;
  return rows.sort(
    (a, b) =>
      Number(active(b)) - Number(active(a)) || b.queueDepth - a.queueDepth || compareValues(a.name, b.name),
  );
}

// ---- History (charts) ----------------------------------------------------------------------------

const MINUTE_MS = 60_000;

// The stats document's per-minute history as uPlot columns, x in Unix seconds. The broker only keeps
// minutes that saw activity: the gaps are quiet minutes, so counts are filled with 0 and latencies
// with null (no data, drawn as a gap). The series runs up to `nowMs`'s minute so an idle pool shows a
// flat line up to now rather than stopping at its last busy minute.
export function historySeries(history = [], nowMs = null) {
  const points = history
    .map((m) => ({ ...m, t: Date.parse(m.minute) }))
    .filter((m) => Number.isFinite(m.t))
    .sort((a, b) => a.t - b.t);
  const out = { x: [], submitted: [], completed: [], failed: [], runP50: [], runP99: [], waitP50: [] };
  if (points.length === 0) return out;
  const byMinute = new Map(points.map((m) => [Math.floor(m.t / MINUTE_MS), m]));
  const first = Math.floor(points[0].t / MINUTE_MS);
  let last = Math.floor(points[points.length - 1].t / MINUTE_MS);
  if (nowMs !== null) {
    // Never run more than an hour past the data (a browser clock far ahead would stretch the axis).
    last = Math.max(last, Math.min(Math.floor(nowMs / MINUTE_MS), last + 60));
  }
  for (let minute = first; minute <= last; minute++) {
    const m = byMinute.get(minute);
    out.x.push((minute * MINUTE_MS) / 1000);
    out.submitted.push(m?.submitted ?? 0);
    out.completed.push(m?.completed ?? 0);
    out.failed.push(m?.failed ?? 0);
    const busy = m && m.completed + m.failed > 0;
    out.runP50.push(busy ? m.run_time_p50_ms : null);
    out.runP99.push(busy ? m.run_time_p99_ms : null);
    out.waitP50.push(busy ? m.queue_wait_p50_ms : null);
  }
  return out;
}

// ---- Formatting ----------------------------------------------------------------------------------

const integer = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });

export function formatCount(n) {
  return integer.format(Number(n) || 0);
}

export function formatRate(perSecond) {
  const v = Number(perSecond) || 0;
  if (v === 0) return '0/s';
  if (v < 0.1) return `${(v * 60).toFixed(1)}/min`;
  return `${v < 10 ? v.toFixed(2) : v.toFixed(1)}/s`;
}

export function formatMs(ms) {
  const v = Number(ms) || 0;
  if (v === 0) return '0 ms';
  if (v < 1) return `${(v * 1000).toFixed(0)} µs`;
  if (v < 1000) return `${v < 10 ? v.toFixed(1) : v.toFixed(0)} ms`;
  return `${(v / 1000).toFixed(2)} s`;
}

// Compute time donated: "0 s", "< 0.1 s", "4.2 s", "42 s", "3 m 05 s", "2 h 03 m", "3 d 04 h".
export function formatDuration(seconds) {
  const v = Math.max(0, Number(seconds) || 0);
  if (v === 0) return '0 s';
  if (v < 0.05) return '< 0.1 s';
  if (v < 10) return `${v.toFixed(1)} s`;
  let s = Math.floor(v);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const two = (n) => String(n).padStart(2, '0');
  if (d > 0) return `${d} d ${two(h)} h`;
  if (h > 0) return `${h} h ${two(m)} m`;
  if (m > 0) return `${m} m ${two(s)} s`;
  return `${s} s`;
}

export function formatAge(seconds) {
  const v = Math.max(0, Number(seconds) || 0);
  if (v < 10) return `${v.toFixed(1)} s ago`;
  if (v < 60) return `${Math.round(v)} s ago`;
  return `${formatDuration(v)} ago`;
}

// Credits: two decimals, grouped ("1,234.57"); "< 0.01" for a sliver, so nobody who earned reads 0.
const credits2 = new Intl.NumberFormat('en', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
export function formatCredits(n) {
  const v = Number(n) || 0;
  if (v > 0 && v < 0.005) return '< 0.01';
  return credits2.format(v);
}

export function formatPercent(fraction) {
  return `${Math.round((Number(fraction) || 0) * 100)}%`;
}
