// The dashboard's API client (src/api.js) against a fake fetch: how each kind of answer maps to the
// page's state, and how the admin key is asked for, kept and sent.
import { describe, expect, it } from 'vitest';
import { getJson, KEY_STORAGE_KEY, LEADERBOARD_RECHECK_MS, PoolClient, sessionKeyStore } from '../src/api.js';

const json = (status, body) => ({ status, text: async () => (body === undefined ? '' : JSON.stringify(body)) });

const healthy = {
  '/health': json(200, { status: 'ok', broker: 'reachable', version: '0.1.0' }),
  '/api/admin/stats': json(200, { workers: { live: 1 } }),
  '/api/admin/workers': json(200, { workers: [{ worker_id: 'w1' }], total: 1 }),
  '/api/admin/services': json(200, { services: [] }),
};

// A fetch that answers from a table of URL -> response (or an Error to throw), recording requests.
function fakeFetch(table) {
  const calls = [];
  const fetchImpl = async (url, init) => {
    calls.push({ url, headers: init.headers });
    const answer = typeof table === 'function' ? table(url, init) : table[url];
    if (answer instanceof Error) throw answer;
    if (!answer) return json(404, { error: 'no route' });
    return answer;
  };
  return { fetchImpl, calls };
}

function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
    map: m,
  };
}

describe('getJson', () => {
  it('classifies answers', async () => {
    const cases = [
      [json(200, { a: 1 }), 'ok'],
      [json(401, { error: 'missing key' }), 'auth'],
      [json(403, { error: 'not admin' }), 'auth'],
      [json(503, { error: 'broker unreachable' }), 'unavailable'],
      [json(504, { error: 'timeout' }), 'unavailable'],
      [json(500, { error: 'bug' }), 'error'],
      [{ status: 200, text: async () => '<html>' }, 'error'],
    ];
    for (const [answer, kind] of cases) {
      const { fetchImpl } = fakeFetch(() => answer);
      expect((await getJson(fetchImpl, '/x')).kind).toBe(kind);
    }
  });

  it('turns a thrown fetch into a network result with the reason', async () => {
    const { fetchImpl } = fakeFetch(() => new TypeError('Failed to fetch'));
    const r = await getJson(fetchImpl, '/x');
    expect(r).toMatchObject({ kind: 'network', message: 'Failed to fetch' });
  });

  it('gives up on a gateway that does not answer in time', async () => {
    const hang = (url, init) =>
      new Promise((resolve, reject) => init.signal.addEventListener('abort', () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' }))));
    const r = await getJson(hang, '/x', { timeoutMs: 20 });
    expect(r.kind).toBe('network');
    expect(r.message).toMatch(/no answer/);
  });
});

describe('PoolClient.poll', () => {
  it('is live with the documents when everything answers', async () => {
    const { fetchImpl, calls } = fakeFetch(healthy);
    const client = new PoolClient({ fetchImpl, keyStore: sessionKeyStore(memoryStorage()) });
    const r = await client.poll();
    expect(r.state).toBe('live');
    expect(r.data.workers).toEqual([{ worker_id: 'w1' }]);
    expect(r.data.health.broker).toBe('reachable');
    // One request per document, plus the leaderboard (404 here: it does not change the state).
    expect(calls.map((c) => c.url).sort()).toEqual([...Object.keys(healthy), '/api/leaderboard?period=week&by=credits'].sort());
    expect(calls.every((c) => !('X-API-Key' in c.headers))).toBe(true);
    expect(r.data.leaderboard).toMatchObject({ answer: { kind: 'error', status: 404 }, query: { period: 'week', by: 'credits' } });
  });

  it('asks the leaderboard for the board\'s period and measure, with the key, in the same poll', async () => {
    const doc = { period: 'day', by: 'tasks', accounts: [] };
    const { fetchImpl, calls } = fakeFetch({ ...healthy, '/api/leaderboard?period=day&by=tasks': json(200, doc) });
    const client = new PoolClient({ fetchImpl, keyStore: sessionKeyStore(memoryStorage()) });
    client.setKey('k');
    const r = await client.poll({ period: 'day', by: 'tasks' });
    expect(r.state).toBe('live');
    expect(r.data.leaderboard).toEqual({ answer: { kind: 'ok', status: 200, body: doc, message: '' }, query: { period: 'day', by: 'tasks' } });
    expect(calls).toHaveLength(5);
    expect(calls.every((c) => c.headers['X-API-Key'] === 'k')).toBe(true);
  });

  it('stays live when the leaderboard says the pool has no database', async () => {
    const noDb = json(409, { error: 'accounts need a database', code: 'failed_precondition' });
    const { fetchImpl } = fakeFetch({ ...healthy, '/api/leaderboard?period=week&by=credits': noDb });
    const r = await new PoolClient({ fetchImpl, keyStore: sessionKeyStore(memoryStorage()) }).poll();
    expect(r.state).toBe('live');
    expect(r.data.leaderboard.answer).toMatchObject({ kind: 'error', status: 409, message: 'accounts need a database' });
  });

  it('asks a pool without a leaderboard again only after LEADERBOARD_RECHECK_MS', async () => {
    const noDb = json(409, { error: 'accounts need a database', code: 'failed_precondition' });
    const { fetchImpl, calls } = fakeFetch((url) => (url.startsWith('/api/leaderboard') ? noDb : healthy[url]));
    let now = 1_000_000;
    const client = new PoolClient({ fetchImpl, keyStore: sessionKeyStore(memoryStorage()), now: () => now });
    const boardCalls = () => calls.filter((c) => c.url.startsWith('/api/leaderboard')).length;
    expect((await client.poll()).data.leaderboard.answer.status).toBe(409);
    now += LEADERBOARD_RECHECK_MS - 1;
    const quiet = await client.poll();
    expect(quiet.state).toBe('live');
    expect(quiet.data.leaderboard.answer).toBeNull();
    expect(boardCalls()).toBe(1);
    now += 1;
    await client.poll();
    expect(boardCalls()).toBe(2);
    // A new key may open a private leaderboard: asked at once.
    client.setKey('k');
    await client.poll();
    expect(boardCalls()).toBe(3);
  });

  it('is not asked for a key by a private leaderboard, nor told the gateway is down when only it fails', async () => {
    for (const answer of [json(401, { error: 'key required' }), new TypeError('Failed to fetch')]) {
      const { fetchImpl } = fakeFetch((url) => (url.startsWith('/api/leaderboard') ? answer : healthy[url]));
      const r = await new PoolClient({ fetchImpl, keyStore: sessionKeyStore(memoryStorage()) }).poll();
      expect(r.state).toBe('live');
    }
  });

  it('says the gateway is unreachable when a request cannot be made', async () => {
    const { fetchImpl } = fakeFetch(() => new TypeError('Failed to fetch'));
    const r = await new PoolClient({ fetchImpl, keyStore: sessionKeyStore(memoryStorage()) }).poll();
    expect(r.state).toBe('gateway-down');
    expect(r.message).toBe('No answer from the gateway (Failed to fetch).');
  });

  it('says the broker is unreachable when /health says so or admin routes answer 503', async () => {
    const viaHealth = fakeFetch({ ...healthy, '/health': json(503, { status: 'degraded', broker: 'unreachable' }) });
    expect((await new PoolClient({ fetchImpl: viaHealth.fetchImpl, keyStore: sessionKeyStore(memoryStorage()) }).poll()).state).toBe('broker-down');
    const viaAdmin = fakeFetch({ ...healthy, '/api/admin/stats': json(504, { error: 'broker did not answer', code: 'deadline_exceeded' }) });
    const r = await new PoolClient({ fetchImpl: viaAdmin.fetchImpl, keyStore: sessionKeyStore(memoryStorage()) }).poll();
    expect(r.state).toBe('broker-down');
    expect(r.message).toBe('The gateway is up but has no answer from the broker (broker did not answer).');
  });

  it('asks for a key on 401, then sends the stored key as X-API-Key', async () => {
    const storage = memoryStorage();
    const { fetchImpl, calls } = fakeFetch((url, init) => {
      if (url.startsWith('/api/admin/') && init.headers['X-API-Key'] !== 's3cret') return json(401, { error: 'admin key required' });
      return healthy[url];
    });
    const client = new PoolClient({ fetchImpl, keyStore: sessionKeyStore(storage) });
    const first = await client.poll();
    expect(first).toMatchObject({ state: 'auth', keyRejected: false });

    client.setKey('  s3cret ');
    expect(storage.map.get(KEY_STORAGE_KEY)).toBe('s3cret');
    const second = await client.poll();
    expect(second.state).toBe('live');
    expect(calls.slice(-4).every((c) => c.headers['X-API-Key'] === 's3cret')).toBe(true);

    client.setKey('wrong');
    expect(await client.poll()).toMatchObject({ state: 'auth', keyRejected: true });
    client.forgetKey();
    expect(storage.map.has(KEY_STORAGE_KEY)).toBe(false);
  });

  it('keeps the key in memory when session storage refuses it', async () => {
    const broken = { getItem: () => { throw new Error('denied'); }, setItem: () => { throw new Error('denied'); }, removeItem: () => {} };
    const store = sessionKeyStore(broken);
    store.set('k');
    expect(store.get()).toBe('k');
  });

  it('reports any other admin error with its route and status', async () => {
    const { fetchImpl } = fakeFetch({ ...healthy, '/api/admin/services': json(429, { error: 'slow down' }) });
    const r = await new PoolClient({ fetchImpl, keyStore: sessionKeyStore(memoryStorage()) }).poll();
    expect(r.state).toBe('error');
    expect(r.message).toBe('/api/admin/services answered 429: slow down');
  });
});
