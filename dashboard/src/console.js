// The operator console's pure logic (issue 19; docs/console.md): the hash route and
// its filters (`#/tasks?service=x&status=dead`), the API path each page asks for, cursor paging, the
// shaping of /api/admin/history into chart columns, and how a payload or result is shown (pretty JSON,
// text, or size and type with a download link). No DOM, no fetch, no clock unless passed in, so
// test/console.test.js covers every rule. The pages in src/pages/ draw what these functions return.

// ---- Routes ---------------------------------------------------------------------------------------

// Page name -> the query keys it keeps in the hash (everything else is dropped, so a stale or hand-typed
// key never reaches the API).
export const PAGES = {
  overview: [],
  tasks: ['service', 'status', 'account', 'worker', 'error_code', 'since', 'until', 'limit', 'cursor'],
  task: [],
  'dead-letters': [],
  history: ['service', 'range'],
  worker: [],
  accounts: ['account'],
};

export const TASK_STATUSES = ['queued', 'running', 'completed', 'failed', 'dead', 'cancelled', 'expired'];
export const HISTORY_RANGES = ['1h', '24h', '7d'];
export const TASK_FILTERS = PAGES.tasks.filter((k) => k !== 'cursor' && k !== 'limit');
export const DEFAULT_PAGE_SIZE = 50;

// A location hash -> { page, id, query }. Anything that is not `#/...` (the skip link's `#workers`, an
// empty hash) is the overview, so in-page anchors keep working.
export function parseHash(hash = '') {
  const h = String(hash).replace(/^#/, '');
  if (!h.startsWith('/')) return { page: 'overview', id: null, query: {} };
  const [pathPart, search = ''] = h.slice(1).split('?', 2);
  const parts = pathPart.split('/').filter(Boolean).map(safeDecode);
  let page = parts[0] ?? 'overview';
  let id = parts[1] ?? null;
  if (page === 'tasks' && id) page = 'task';
  if (page === 'workers' && id) page = 'worker';
  if (!(page in PAGES) || ((page === 'task' || page === 'worker') && !id)) {
    return { page: 'not-found', id: null, query: {}, path: pathPart };
  }
  const params = new URLSearchParams(search);
  const query = {};
  for (const key of PAGES[page]) {
    const v = params.get(key);
    if (v !== null && v !== '') query[key] = v;
  }
  if (page === 'history' && !HISTORY_RANGES.includes(query.range)) delete query.range;
  if (page === 'tasks' && query.status && !TASK_STATUSES.includes(query.status)) delete query.status;
  if (page === 'tasks' && query.limit) {
    const n = Number(query.limit);
    if (Number.isInteger(n) && n >= 1 && n <= 1000) query.limit = String(n);
    else delete query.limit;
  }
  return { page, id: page === 'task' || page === 'worker' ? id : null, query };
}

function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// { page, id, query } -> a hash, keys in the page's own order, empty values left out: the inverse of
// parseHash, so formatHash(parseHash(h)) is stable and back/forward history has no duplicates.
export function formatHash({ page, id = null, query = {} }) {
  if (page === 'overview') return '#/';
  const base = page === 'task' ? `tasks/${encodeURIComponent(id)}` : page === 'worker' ? `workers/${encodeURIComponent(id)}` : page;
  const params = new URLSearchParams();
  for (const key of PAGES[page] ?? []) {
    const v = query[key];
    if (v !== undefined && v !== null && v !== '') params.set(key, String(v));
  }
  const search = params.toString();
  return `#/${base}${search ? `?${search}` : ''}`;
}

export const taskHref = (id) => formatHash({ page: 'task', id });
export const workerHref = (id) => formatHash({ page: 'worker', id });
export const tasksHref = (query = {}) => formatHash({ page: 'tasks', query });

// ---- Task browser: filters and paging -------------------------------------------------------------

// A `datetime-local` value (browser local time, no zone) -> RFC 3339 UTC; '' stays ''. Numbers (Unix
// seconds) and strings with a zone pass through, since the API takes both.
export function toApiTime(value, offsetMinutes = 0) {
  if (!value) return '';
  const s = String(value).trim();
  if (/^\d+(\.\d+)?$/.test(s) || /(Z|[+-]\d\d:?\d\d)$/i.test(s)) return s;
  const m = s.match(/^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d))?$/);
  if (!m) return s;
  const utc = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] ?? 0)) + offsetMinutes * 60_000;
  return new Date(utc).toISOString();
}

// RFC 3339 (or Unix seconds) -> a `datetime-local` value in local time ('' when absent or unreadable).
export function toLocalInput(value, offsetMinutes = 0) {
  if (!value) return '';
  const s = String(value);
  const t = /^\d+(\.\d+)?$/.test(s) ? Number(s) * 1000 : Date.parse(s);
  if (!Number.isFinite(t)) return '';
  return new Date(t - offsetMinutes * 60_000).toISOString().slice(0, 19);
}

// The task list's API path for a filter set (cursor included): the hash's `limit` rows a page, or
// DEFAULT_PAGE_SIZE.
export function tasksPath(query = {}) {
  const params = new URLSearchParams();
  for (const key of PAGES.tasks) {
    const v = query[key];
    if (key !== 'limit' && v !== undefined && v !== null && v !== '') params.set(key, String(v));
  }
  params.set('limit', String(query.limit ?? DEFAULT_PAGE_SIZE));
  return `/api/tasks?${params}`;
}

// Cursor paging. The API gives each page the cursor of the next; the way back is the cursors seen on
// the way here. The current cursor lives in the hash (reload keeps the page); the trail lives in
// memory (session history), and a reload with a cursor but no trail still offers "first page".
export function pageForward(trail, current, next) {
  return next ? [...trail, current ?? ''] : trail;
}

export function pageBack(trail) {
  if (trail.length === 0) return { trail, cursor: '' };
  return { trail: trail.slice(0, -1), cursor: trail[trail.length - 1] };
}

// The trail as it stands at `cursor`: after back/forward in the browser the current cursor may be one
// the trail already holds, and the pages from it on are no longer behind us.
export function trailFor(trail, cursor) {
  const i = trail.indexOf(cursor ?? '');
  return i >= 0 ? trail.slice(0, i) : trail;
}

// What the pager offers for a page: its number (1-based, known only along a trail) and the moves.
export function pagerState(trail, cursor, nextCursor) {
  const known = !cursor || trail.length > 0;
  return {
    number: known ? trail.length + 1 : null,
    canBack: !!cursor,
    canFirst: !!cursor,
    canNext: !!nextCursor,
  };
}

// Filters changed: a new list from its first page.
export function withFilters(query, change) {
  const next = { ...query, ...change };
  delete next.cursor;
  for (const k of Object.keys(next)) if (next[k] === '' || next[k] == null) delete next[k];
  return next;
}

// ---- Task page: payload and result ----------------------------------------------------------------

export const INLINE_LIMIT_BYTES = 256 * 1024;

export function formatBytes(n) {
  const v = Number(n);
  if (!Number.isFinite(v) || v < 0) return '—';
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(v < 10 * 1024 ? 1 : 0)} KiB`;
  return `${(v / (1024 * 1024)).toFixed(1)} MiB`;
}

function utf8Length(s) {
  return new TextEncoder().encode(s).length;
}

// How one body of a task (which: 'payload' | 'result') is shown, from the detail JSON:
//   { kind: 'none' }                       no body (no result yet)
//   { kind: 'json', text, bytes, type }    pretty-printed with two spaces
//   { kind: 'text', text, bytes, type }    UTF-8 text as it is
//   { kind: 'binary', bytes, type, href }  size and type, with a download link
// A body the API left out (over 256 KiB: `<which>_truncated`) or base64 is shown as binary; both
// are downloadable from /api/tasks/{id}/<which>.
export function bodyView(task, which) {
  const value = task?.[which];
  const encoding = task?.[`${which}_encoding`];
  const truncated = !!task?.[`${which}_truncated`] || (which === 'payload' && !!task?.payload_truncated && value == null);
  const type = (which === 'result' ? task?.content_type : task?.payload_content_type) || null;
  let bytes = task?.[`${which}_bytes`];
  const href = task?.task_id ? `/api/tasks/${encodeURIComponent(task.task_id)}/${which}` : null;
  if (truncated) return { kind: 'binary', bytes: bytes ?? null, type: type ?? 'application/octet-stream', href, truncated: true };
  if (value === undefined || (value === null && which === 'result')) return { kind: 'none', href: null };
  if (encoding === 'base64') {
    if (bytes == null && typeof value === 'string') bytes = Math.floor((value.replace(/=+$/, '').length * 3) / 4);
    return { kind: 'binary', bytes, type: type ?? 'application/octet-stream', href };
  }
  if (typeof value === 'string' && !(type ?? '').includes('json')) {
    return { kind: 'text', text: value, bytes: bytes ?? utf8Length(value), type: type ?? 'text/plain', href };
  }
  const text = JSON.stringify(value, null, 2) ?? 'null';
  return { kind: 'json', text, bytes: bytes ?? utf8Length(JSON.stringify(value) ?? 'null'), type: type ?? 'application/json', href };
}

export const TERMINAL_STATUSES = ['completed', 'dead', 'cancelled', 'expired'];
export const isTerminal = (status) => TERMINAL_STATUSES.includes(status);

// The attempt log oldest first, with each attempt's duration in ms (null while running or unknown).
export function attemptRows(log = []) {
  return [...(Array.isArray(log) ? log : [])]
    .sort((a, b) => (a.attempt ?? 0) - (b.attempt ?? 0))
    .map((a) => {
      const s = Date.parse(a.started_at);
      const e = Date.parse(a.ended_at);
      return { ...a, duration_ms: Number.isFinite(s) && Number.isFinite(e) ? Math.max(0, e - s) : null };
    });
}

// ---- Dead letters ----------------------------------------------------------------------------------

// The body of a bulk retry/discard for a group (or everything: no group).
export function bulkBody(group = null, limit = 1000) {
  const body = { limit };
  if (group?.service) body.service = group.service;
  if (group?.error_code) body.error_code = group.error_code;
  return body;
}

export function groupKey(g) {
  return `${g.service ?? ''}\u0000${g.error_code ?? ''}`;
}

// ---- History ---------------------------------------------------------------------------------------

// /api/admin/history's points -> uPlot columns (x in Unix seconds), oldest first. Counts stay numbers
// (0 for an empty bucket), percentiles null where the bucket had no samples (a gap in the chart).
// `errors` is failed + dead: every attempt that went wrong.
export function historyColumns(doc) {
  const points = [...(doc?.points ?? [])]
    .map((p) => ({ ...p, t: Date.parse(p.at) }))
    .filter((p) => Number.isFinite(p.t))
    .sort((a, b) => a.t - b.t);
  const num = (v) => (v == null || !Number.isFinite(Number(v)) ? 0 : Number(v));
  const opt = (v) => (v == null || !Number.isFinite(Number(v)) ? null : Number(v));
  const step = Number(doc?.step_s) || 60;
  return {
    step,
    x: points.map((p) => p.t / 1000),
    submitted: points.map((p) => num(p.submitted)),
    completed: points.map((p) => num(p.completed)),
    errors: points.map((p) => num(p.failed) + num(p.dead)),
    throughput: points.map((p) => (p.throughput_per_s == null ? num(p.completed) / step : num(p.throughput_per_s))),
    runP50: points.map((p) => opt(p.run_time_p50_ms)),
    runP99: points.map((p) => opt(p.run_time_p99_ms)),
    waitP50: points.map((p) => opt(p.queue_wait_p50_ms)),
    waitP99: points.map((p) => opt(p.queue_wait_p99_ms)),
    depth: points.map((p) => num(p.queue_depth)),
  };
}

// Totals over a range, for the chart's text summary and for comparing with the API.
export function historyTotals(cols) {
  const sum = (a) => a.reduce((s, v) => s + (v ?? 0), 0);
  const max = (a) => a.reduce((m, v) => (v != null && v > m ? v : m), 0);
  return {
    submitted: sum(cols.submitted),
    completed: sum(cols.completed),
    errors: sum(cols.errors),
    maxDepth: max(cols.depth),
    maxRunP99: max(cols.runP99),
  };
}

// ---- Times -----------------------------------------------------------------------------------------

// An RFC 3339 time as "2026-12-07 15:04:05" (UTC, so every operator reads the same), '—' when absent.
export function formatTime(value) {
  if (!value) return '—';
  const t = Date.parse(value);
  if (!Number.isFinite(t)) return String(value);
  return new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace('Z', ' UTC');
}

// Worker hardware as label/value rows, skipping what the worker did not report.
export function hardwareRows(caps = {}) {
  const rows = [
    ['CPU', caps.cpu_model ? `${caps.cpu_model}${caps.cpu_cores ? ` · ${caps.cpu_cores} cores` : ''}` : caps.cpu_cores ? `${caps.cpu_cores} cores` : null],
    ['RAM', caps.ram_gb != null ? `${caps.ram_gb} GB${caps.ram_available_gb != null ? ` (${caps.ram_available_gb} GB free)` : ''}` : null],
    ['Disk', caps.disk_gb != null ? `${caps.disk_gb} GB${caps.disk_free_gb != null ? ` (${caps.disk_free_gb} GB free)` : ''}` : null],
    ['GPU', caps.has_gpu ? `${caps.gpu_count ?? 1} × ${caps.gpu_type || 'GPU'}${caps.gpu_memory_gb ? ` · ${caps.gpu_memory_gb} GB` : ''}` : 'none'],
    ['OS', [caps.os, caps.arch].filter(Boolean).join(' / ') || null],
    ['Type', caps.worker_type || null],
  ];
  return rows.filter(([, v]) => v !== null && v !== undefined && v !== '');
}
