// The dashboard's view of the gateway: one poll fetches /health and the admin documents it draws,
// and says in one word what state the pool is in for the page — live, gateway unreachable, broker
// unreachable, admin key needed, or some other error. The admin key, when the gateway asks for one,
// is kept in sessionStorage (gone when the tab closes) and sent as X-API-Key. The same poll reads the
// public leaderboard for the contributors board; its answer never changes the page's state (a pool
// without a database answers 409 there and is still live). A pool without a leaderboard (409, 404)
// does not grow one until its broker or gateway restarts, nor does a private one (401) open without a
// new key, so it is asked again only every LEADERBOARD_RECHECK_MS or at once after a new key: not a
// failed request (and a console error in the browser) every refresh.
// fetch and storage are injected so test/api.test.js runs all of this without a browser.
import { DEFAULT_BOARD_QUERY, leaderboardPath } from './model.js';

export const KEY_STORAGE_KEY = 'rma.adminKey';
export const ADMIN_DOCUMENTS = ['stats', 'workers', 'services'];
// What the poll fetches under a console page: the connection state and the service list (filters,
// the services page), not the worker list, which on a large pool is the biggest document the
// broker makes and would hold up the page's own requests on the broker's loop.
export const CONSOLE_DOCUMENTS = ['services'];
export const LEADERBOARD_RECHECK_MS = 60_000;

// sessionStorage can be missing or refuse writes (privacy modes, sandboxed frames): then the key lives
// in memory for as long as the page does.
export function sessionKeyStore(storage = globalThis.sessionStorage) {
  let memory = null;
  return {
    get() {
      try {
        return storage?.getItem(KEY_STORAGE_KEY) ?? memory;
      } catch {
        return memory;
      }
    },
    set(value) {
      memory = value;
      try {
        if (value === null) storage?.removeItem(KEY_STORAGE_KEY);
        else storage?.setItem(KEY_STORAGE_KEY, value);
      } catch {
        // kept in memory only
      }
    },
  };
}

// One GET, classified. Never throws: a network failure or a timeout is a result like any other.
export async function getJson(fetchImpl, url, { headers = {}, timeoutMs = 4000, method = 'GET', body: payload } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response;
  try {
    const init = {
      headers: { Accept: 'application/json', ...headers },
      cache: 'no-store',
      credentials: 'same-origin',
      signal: controller.signal,
    };
    // The console's actions: every POST/DELETE carries Content-Type: application/json, which the
    // gateway demands of them (a cross-site form cannot send it).
    if (method !== 'GET') {
      init.method = method;
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(payload ?? {});
    }
    response = await fetchImpl(url, init);
  } catch (e) {
    clearTimeout(timer);
    const timedOut = e?.name === 'AbortError';
    return { kind: 'network', status: 0, body: null, message: timedOut ? `no answer within ${timeoutMs / 1000} s` : String(e?.message ?? e) };
  }
  let body = null;
  try {
    const text = await response.text();
    body = text ? JSON.parse(text) : null;
  } catch (e) {
    if (e?.name === 'AbortError') {
      clearTimeout(timer);
      return { kind: 'network', status: response.status, body: null, message: 'the answer was cut off' };
    }
    body = null;  // not JSON: keep the status, say so below
  } finally {
    clearTimeout(timer);
  }
  const status = response.status;
  const message = body?.error ?? `HTTP ${status}`;
  if (status >= 200 && status < 300) {
    if (body === null || typeof body !== 'object') {
      return { kind: 'error', status, body: null, message: `${url} did not answer with JSON` };
    }
    return { kind: 'ok', status, body, message: '' };
  }
  if (status === 401 || status === 403) return { kind: 'auth', status, body, message };
  // 502/503/504 from the gateway mean it could not get an answer from the broker.
  if (status === 502 || status === 503 || status === 504) return { kind: 'unavailable', status, body, message };
  return { kind: 'error', status, body, message };
}

// What one poll means for the page. `results` holds getJson results for health and each admin document.
export function summarize(results, { usedKey = false, documents = ADMIN_DOCUMENTS } = {}) {
  const all = Object.entries(results);
  const admin = documents.map((name) => [name, results[name]]);
  const network = all.find(([, r]) => r.kind === 'network');
  if (network) {
    return { state: 'gateway-down', message: `No answer from the gateway (${network[1].message}).` };
  }
  if (all.some(([, r]) => r.kind === 'auth')) {
    return { state: 'auth', keyRejected: usedKey, message: usedKey ? 'The admin key was refused.' : 'The gateway asks for an admin key.' };
  }
  const health = results.health;
  const brokerDown =
    health?.body?.broker === 'unreachable' || admin.some(([, r]) => r.kind === 'unavailable');
  if (brokerDown) {
    const why = admin.find(([, r]) => r.kind === 'unavailable')?.[1]?.message;
    return {
      state: 'broker-down',
      message: `The gateway is up but has no answer from the broker${why ? ` (${why})` : ''}.`,
    };
  }
  const failed = admin.find(([, r]) => r.kind !== 'ok');
  if (failed) {
    return { state: 'error', message: `/api/admin/${failed[0]} answered ${failed[1].status}: ${failed[1].message}` };
  }
  return {
    state: 'live',
    message: '',
    data: {
      health: health?.body ?? null,
      stats: results.stats?.body ?? null,
      workers: results.workers ? results.workers.body.workers ?? [] : null,
      services: results.services?.body ?? null,
    },
  };
}

export class PoolClient {
  constructor({
    fetchImpl = (...a) => globalThis.fetch(...a),
    keyStore = sessionKeyStore(),
    timeoutMs = 4000,
    base = '',
    now = () => Date.now(),
  } = {}) {
    this.fetchImpl = fetchImpl;
    this.now = now;
    this.leaderboardAbsentUntil = 0; // while now() is below it, the leaderboard is not asked
    this.keyStore = keyStore;
    this.timeoutMs = timeoutMs;
    this.base = base;
  }

  get key() {
    return this.keyStore.get();
  }

  setKey(key) {
    this.keyStore.set(key && key.trim() ? key.trim() : null);
    this.leaderboardAbsentUntil = 0;
  }

  forgetKey() {
    this.keyStore.set(null);
    this.leaderboardAbsentUntil = 0;
  }

  // One console request (GET, or an action with a JSON body) with the admin key: a getJson result.
  request(path, { method = 'GET', body, timeoutMs = this.timeoutMs } = {}) {
    const key = this.key;
    return getJson(this.fetchImpl, `${this.base}${path}`, {
      headers: key ? { 'X-API-Key': key } : {},
      timeoutMs,
      method,
      body,
    });
  }

  // `board` is the contributors board's { period, by }: at most one leaderboard request per poll.
  // data.leaderboard.answer is null when the leaderboard was not asked this time. `documents` are the
  // admin documents to fetch (the overview's, or CONSOLE_DOCUMENTS without the board); the data has
  // null for the others.
  async poll(board = DEFAULT_BOARD_QUERY, documents = ADMIN_DOCUMENTS) {
    const key = this.key;
    const options = { headers: key ? { 'X-API-Key': key } : {}, timeoutMs: this.timeoutMs };
    const names = ['health', ...documents];
    const urls = names.map((n) => (n === 'health' ? `${this.base}/health` : `${this.base}/api/admin/${n}`));
    const query = { period: board.period, by: board.by };
    const askBoard = documents.includes('workers') && this.now() >= this.leaderboardAbsentUntil;
    const [leaderboard, ...answers] = await Promise.all([
      askBoard ? getJson(this.fetchImpl, `${this.base}${leaderboardPath(query)}`, options) : null,
      ...urls.map((u) => getJson(this.fetchImpl, u, options)),
    ]);
    if ([401, 403, 404, 409].includes(leaderboard?.status)) {
      this.leaderboardAbsentUntil = this.now() + LEADERBOARD_RECHECK_MS;
    }
    const results = Object.fromEntries(names.map((n, i) => [n, answers[i]]));
    // /health answers 503 (with a JSON body) when the broker is unreachable: that is an answer.
    if (results.health.kind === 'unavailable' && results.health.body) results.health = { ...results.health, kind: 'ok' };
    const summary = summarize(results, { usedKey: !!key, documents });
    if (summary.state === 'live') summary.data.leaderboard = { answer: leaderboard, query };
    return summary;
  }
}
