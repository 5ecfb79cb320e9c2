// The dashboard page: polls the gateway every `refreshMs` (never two polls at once), keeps the last good
// data on screen when the gateway or broker cannot be reached and says so plainly, and asks for the
// admin key when the gateway wants one. The contributors board's period and measure live here, because
// each poll asks the leaderboard for them; changing them polls at once. The operator console's pages
// (src/pages/, chosen by the hash route) sit under the same header and poll their own documents; the
// overview poll goes on beneath them for the connection state, the key prompt and the service list.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ConnectionBanner, ConnectionStatus } from './components/connection.jsx';
import { KeyDialog } from './components/key_dialog.jsx';
import { Summary } from './components/summary.jsx';
import { TierBars } from './components/tier_bars.jsx';
import { HistoryCharts } from './components/charts.jsx';
import { ServicesTable } from './components/services_table.jsx';
import { WorkersTable } from './components/workers_table.jsx';
import { Contributors } from './components/contributors.jsx';
import { DEFAULT_BOARD_QUERY, leaderboardBoard } from './model.js';
import { ADMIN_DOCUMENTS, CONSOLE_DOCUMENTS } from './api.js';
import { useRoute } from './hooks.js';
import { TasksPage } from './pages/tasks.jsx';
import { TaskPage } from './pages/task.jsx';
import { DeadLettersPage } from './pages/dead_letters.jsx';
import { HistoryPage } from './pages/history.jsx';
import { WorkerPage } from './pages/worker.jsx';
import { AccountsPage } from './pages/accounts.jsx';

// The console's sections, in the navigation's order; `pages` are the routes that light each link.
const NAV = [
  { page: 'overview', href: '#/', label: 'Overview', pages: ['overview'] },
  { page: 'tasks', href: '#/tasks', label: 'Tasks', pages: ['tasks', 'task'] },
  { page: 'dead-letters', href: '#/dead-letters', label: 'Dead letters', pages: ['dead-letters'] },
  { page: 'history', href: '#/history', label: 'Services', pages: ['history'] },
  { page: 'accounts', href: '#/accounts', label: 'Accounts', pages: ['accounts'] },
];

const TITLES = {
  overview: 'Overview',
  tasks: 'Tasks',
  task: 'Task',
  'dead-letters': 'Dead letters',
  history: 'Services',
  worker: 'Worker',
  accounts: 'Accounts',
  'not-found': 'Not found',
};

function ConsoleNav({ route }) {
  return (
    <nav class="console-nav" aria-label="Console">
      <ul>
        {NAV.map((n) => (
          <li key={n.page}>
            <a href={n.href} aria-current={n.pages.includes(route.page) ? 'page' : undefined} data-nav={n.page}>
              {n.label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

function ConsolePage({ route, navigate, client, data, pollNow }) {
  const props = { client, route, navigate };
  switch (route.page) {
    case 'tasks':
      return <TasksPage {...props} services={(data?.services?.services ?? []).map((s) => s.name)} />;
    case 'task':
      return <TaskPage key={route.id} {...props} />;
    case 'dead-letters':
      return <DeadLettersPage {...props} />;
    case 'history':
      return <HistoryPage {...props} servicesDoc={data?.services} onChanged={pollNow} />;
    case 'worker':
      return <WorkerPage key={route.id} {...props} />;
    case 'accounts':
      return <AccountsPage {...props} />;
    default:
      return (
        <section class="card" data-page="not-found" data-loaded="true">
          <h2>No such page</h2>
          <p>
            Nothing lives at this address. <a href="#/">Back to the overview</a>.
          </p>
        </section>
      );
  }
}

// A hidden tab still polls, slowly, so the page is current the moment it is looked at again.
const HIDDEN_REFRESH_MS = 30_000;

function usePoller(client, refreshMs, boardQuery, overview) {
  const [data, setData] = useState(null);
  const [conn, setConn] = useState({ state: 'connecting', message: '', since: Date.now(), lastOk: null });
  const [keyPrompt, setKeyPrompt] = useState(null); // null, or { rejected } while the dialog is open
  // Set when the person closes the key dialog without a key: polling goes on (the gateway may stop
  // asking), but the dialog only comes back when they ask for it.
  const keyDismissed = useRef(false);
  const wake = useRef(() => {});
  // Read by each poll, so a new choice does not restart the polling loop.
  const query = useRef(boardQuery);
  query.current = boardQuery;
  const documents = useRef(ADMIN_DOCUMENTS);
  documents.current = overview ? ADMIN_DOCUMENTS : CONSOLE_DOCUMENTS;

  useEffect(() => {
    if (keyPrompt) return undefined; // paused until the admin key is given or the prompt is dismissed
    let stopped = false;
    let running = false;
    let timer = null;

    const schedule = () => {
      clearTimeout(timer);
      timer = setTimeout(run, document.hidden ? Math.max(refreshMs, HIDDEN_REFRESH_MS) : refreshMs);
    };
    async function run() {
      if (running || stopped) return;
      running = true;
      clearTimeout(timer);
      const result = await client.poll(query.current, documents.current);
      running = false;
      if (stopped) return;
      const now = Date.now();
      if (result.state === 'live') {
        // The board keeps its last accounts through a transient leaderboard failure (model.js).
        // A console page's poll leaves out the worker list and the board: the last ones are kept.
        setData((previous) => {
          const { answer, query: asked } = result.data.leaderboard;
          const d = result.data;
          return {
            ...d,
            stats: d.stats ?? previous?.stats ?? null,
            workers: d.workers ?? previous?.workers ?? null,
            board: d.workers ? leaderboardBoard(answer, asked, previous?.board) : previous?.board,
          };
        });
      } else if (result.state === 'auth') {
        if (result.keyRejected) client.forgetKey();
        if (!keyDismissed.current) setKeyPrompt({ rejected: result.keyRejected });
      }
      setConn((c) => ({
        state: result.state,
        message: result.message,
        since: c.state === result.state ? c.since : now,
        lastOk: result.state === 'live' ? now : c.lastOk,
      }));
      // While the dialog is up this loop ends; closing the dialog starts a new one.
      if (result.state !== 'auth' || keyDismissed.current) schedule();
    }
    wake.current = run;
    const onVisibility = () => {
      if (!document.hidden) run();
    };
    document.addEventListener('visibilitychange', onVisibility);
    run();
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisibility);
    };
  }, [client, refreshMs, keyPrompt]);

  const submitKey = useCallback(
    (key) => {
      client.setKey(key);
      keyDismissed.current = false;
      setKeyPrompt(null);
    },
    [client],
  );
  const dismissKey = useCallback(() => {
    keyDismissed.current = true;
    setKeyPrompt(null);
    setConn((c) => ({ ...c, state: 'auth', message: 'The gateway asks for an admin key.' }));
  }, []);
  const forgetKey = useCallback(() => {
    client.forgetKey();
    wake.current();
  }, [client]);
  const askForKey = useCallback(() => {
    keyDismissed.current = false;
    setKeyPrompt({ rejected: false });
  }, []);

  const pollNow = useCallback(() => wake.current(), []);
  return { data, conn, keyPrompt, submitKey, dismissKey, forgetKey, askForKey, pollNow };
}

export function App({ client, refreshMs = 2000 }) {
  const [boardQuery, setBoardQuery] = useState(DEFAULT_BOARD_QUERY);
  const [route, navigate] = useRoute();
  const overview = route.page === 'overview';
  const { data, conn, keyPrompt, submitKey, dismissKey, forgetKey, askForKey, pollNow } = usePoller(
    client,
    refreshMs,
    boardQuery,
    overview,
  );
  // Back on the overview: its documents at once, not at the next tick.
  useEffect(() => {
    if (overview) pollNow();
  }, [overview, pollNow]);
  // A poll already under way carries the old choice; the next one (at once, or at the next tick when
  // one is running) carries the new one.
  const chooseBoard = useCallback((change) => setBoardQuery((q) => ({ ...q, ...change })), []);
  useEffect(() => {
    pollNow();
  }, [boardQuery, pollNow]);
  useEffect(() => {
    document.title = route.page === 'overview' ? 'rma pool dashboard' : `${TITLES[route.page] ?? ''} · rma pool console`;
  }, [route.page]);
  const health = data?.health;
  const stats = data?.stats;
  return (
    <>
      {overview ? (
        <a class="skip-link" href="#workers">
          Skip to the worker list
        </a>
      ) : (
        <a class="skip-link" href="#main">
          Skip to the page
        </a>
      )}
      <header class="page-header">
        <div>
          <h1>rma pool</h1>
          <p class="subtitle">
            {stats ? (
              <>
                Broker store: {stats.store} · broker up {Math.round(stats.uptime_s)} s
                {health?.version ? ` · gateway ${health.version}` : ''}
              </>
            ) : (
              'Live view of the compute pool'
            )}
          </p>
        </div>
        <ConnectionStatus conn={conn} refreshMs={refreshMs} />
        {client.key ? (
          <button type="button" class="secondary" onClick={forgetKey}>
            Forget admin key
          </button>
        ) : null}
      </header>
      <ConsoleNav route={route} />
      <ConnectionBanner conn={conn} hasData={!!data} onEnterKey={askForKey} />
      <main id="main" tabIndex={-1} data-page={overview ? 'overview' : undefined} data-loaded={overview ? String(!!(data?.stats && data?.workers)) : undefined}>
        {!overview ? (
          <ConsolePage route={route} navigate={navigate} client={client} data={data} pollNow={pollNow} />
        ) : data?.stats && data?.workers ? (
          <>
            <Summary stats={stats} workers={data.workers} />
            <div class="grid-2">
              <TierBars stats={stats} workers={data.workers} />
              <HistoryCharts stats={stats} />
            </div>
            <ServicesTable services={data.services} workers={data.workers} />
            <WorkersTable workers={data.workers} />
            <Contributors workers={data.workers} board={data.board} query={boardQuery} onQuery={chooseBoard} />
          </>
        ) : (
          <p class="placeholder" data-testid="placeholder">
            {conn.state === 'connecting' ? 'Loading the pool…' : 'No data yet.'}
          </p>
        )}
      </main>
      {overview ? (
        <footer class="page-footer">
          <p>
            Data from <a href="/api/admin/stats">/api/admin/stats</a>, <a href="/api/admin/workers">/workers</a>,{' '}
            <a href="/api/admin/services">/services</a> and <a href="/api/leaderboard">/api/leaderboard</a>, refreshed
            every {refreshMs / 1000} s.
          </p>
        </footer>
      ) : null}
      {keyPrompt ? <KeyDialog rejected={keyPrompt.rejected} onSubmit={submitKey} onCancel={dismissKey} /> : null}
    </>
  );
}
