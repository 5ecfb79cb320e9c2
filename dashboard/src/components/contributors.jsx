// The contributors board. On a pool with accounts it ranks people: the accounts of GET /api/leaderboard
// for the chosen period (today, this week, all time) and measure (credits, tasks, compute time), each
// with its machines (workers) in rows beneath it that a disclosure button folds away. On a pool without
// accounts (no database: the route answers 409; an older gateway: 404; a failure) it says so in a short
// note and ranks the connected workers from the worker list, as the board always did. The period and
// measure belong to the page (app.jsx), because its poll asks the leaderboard for them.
import { useState } from 'preact/hooks';
import {
  accountRows,
  fallbackNote,
  formatCount,
  formatCredits,
  formatDuration,
  formatPercent,
  LEADERBOARD_MEASURES,
  LEADERBOARD_PERIODS,
  rankContributors,
  tierLabel,
} from '../model.js';

const PERIOD_PHRASE = { day: 'today', week: 'this week', all: 'in all' };
const MEASURE_PHRASE = { credits: 'credits earned', tasks: 'tasks completed', compute: 'compute time' };

function Picker({ legend, name, options, value, onChange }) {
  return (
    <fieldset class="segmented">
      <legend>{legend}</legend>
      {options.map((o) => (
        <label key={o.value}>
          <input type="radio" name={name} value={o.value} checked={value === o.value} onChange={() => onChange(o.value)} />
          {o.label}
        </label>
      ))}
    </fieldset>
  );
}

// Rank, who, the measures (credits only with accounts), and the share of the ranking measure.
function Headers({ who, accounts, by }) {
  return (
    <thead>
      <tr>
        <th scope="col" class="num">
          Rank
        </th>
        <th scope="col">{who}</th>
        {LEADERBOARD_MEASURES.filter((m) => accounts || !m.accountsOnly).map((m) => (
          <th key={m.value} scope="col" class="num">
            {m.label}
          </th>
        ))}
        <th scope="col">Share of {MEASURE_PHRASE[by]}</th>
      </tr>
    </thead>
  );
}

function ShareBar({ share }) {
  return (
    <div class="share">
      <div class="bar-track" aria-hidden="true">
        <div class="bar-fill" style={{ width: formatPercent(share) }} />
      </div>
      <span>{formatPercent(share)}</span>
    </div>
  );
}

// The three numbers of an account or a machine, with the API's exact values in data-value.
function Figures({ row }) {
  return (
    <>
      <td class="num" data-field="credits" data-value={row.credits}>
        {formatCredits(row.credits)}
      </td>
      <td class="num" data-field="tasks" data-value={row.tasks}>
        {formatCount(row.tasks)}
      </td>
      <td class="num" data-field="compute_s" data-value={row.computeS}>
        {formatDuration(row.computeS)}
      </td>
    </>
  );
}

function AccountsBoard({ board, query }) {
  // Folded accounts by name, so the choice survives refreshes and changes of rank.
  const [folded, setFolded] = useState(() => new Set());
  const toggle = (name) =>
    setFolded((old) => {
      const next = new Set(old);
      if (next.has(name)) next.delete(name);
      else next.add(name);
      return next;
    });
  const shown = board.query;
  const pending = shown.period !== query.period || shown.by !== query.by;
  const rows = accountRows(board.doc, shown.by);
  const caption = pending
    ? `Loading ${PERIOD_PHRASE[query.period]}, by ${MEASURE_PHRASE[query.by]}…`
    : `Accounts ranked by ${MEASURE_PHRASE[shown.by]} ${PERIOD_PHRASE[shown.period]}, their machines beneath`;
  return (
    <>
      {board.stale ? (
        <p class="note" data-testid="contributors-note">
          The leaderboard did not answer the last refresh: showing its previous answer.
        </p>
      ) : null}
      {/* Outside the table so it wraps at phone width rather than scrolling with it; polite, so a
          change of the pickers is heard as "Loading…" and then what is shown. */}
      <p class="board-caption" id="board-caption" data-testid="board-caption" aria-live="polite">
        {rows.length === 0 && !pending ? `No account’s machines have earned anything ${PERIOD_PHRASE[shown.period]}.` : caption}
      </p>
      {rows.length === 0 ? null : (
        <div class="table-scroll" tabIndex={0} role="region" aria-labelledby="contributors-title">
          <table
            class="data accounts-board"
            data-testid="accounts-board"
            data-period={shown.period}
            data-by={shown.by}
            aria-busy={pending ? 'true' : 'false'}
            aria-describedby="board-caption"
          >
            <Headers who="Account · machine" accounts by={shown.by} />
            {rows.map((a, i) => {
              const open = !folded.has(a.account);
              const ids = a.workers.map((_, j) => `board-a${i}-w${j}`);
              const machines = `${a.workers.length} ${a.workers.length === 1 ? 'machine' : 'machines'}`;
              return (
                <tbody key={a.account} data-account={a.account}>
                  <tr class="account-row" data-account={a.account}>
                    <td class="num" data-field="rank">
                      {a.rank}
                    </td>
                    <th scope="row">
                      {a.workers.length > 0 ? (
                        <button
                          type="button"
                          class="disclosure"
                          aria-expanded={open ? 'true' : 'false'}
                          aria-controls={ids.join(' ')}
                          onClick={() => toggle(a.account)}
                        >
                          <span class="disclosure-mark" aria-hidden="true">
                            {open ? '▾' : '▸'}
                          </span>
                          <span data-field="account">{a.account}</span>
                        </button>
                      ) : (
                        <span data-field="account">{a.account}</span>
                      )}
                      <span class="tag">{machines}</span>
                    </th>
                    <Figures row={a} />
                    <td>
                      <ShareBar share={a.share} />
                    </td>
                  </tr>
                  {a.workers.map((w, j) => (
                    <tr key={w.workerId} id={ids[j]} class="machine-row" data-worker-id={w.workerId} hidden={!open}>
                      <td />
                      <th scope="row" class="machine">
                        <span class="visually-hidden">{a.account}’s machine </span>
                        <span data-field="name">{w.name}</span>
                      </th>
                      <Figures row={w} />
                      <td>
                        <ShareBar share={w.share} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              );
            })}
          </table>
        </div>
      )}
    </>
  );
}

// The board as it was before accounts: workers from the worker list, by tasks or compute time.
// The first hundred only: a board of a thousand rows is no board, and slow to draw every refresh.
function WorkersBoard({ workers, by }) {
  const ranked = rankContributors(workers, by).slice(0, 100);
  if (ranked.length === 0) return <p class="empty">Nobody has contributed yet.</p>;
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-labelledby="contributors-title">
      <table class="data" data-testid="contributors-table">
        <Headers who="Worker" accounts={false} by={by} />
        <tbody>
          {ranked.map(({ rank, worker: w, share }) => (
            <tr key={w.worker_id} data-worker-id={w.worker_id}>
              <td class="num" data-field="rank">
                {rank}
              </td>
              <th scope="row">
                {w.name}
                <span class="tag">{tierLabel(w.tier)}</span>
                {w.account ? <span class="account"> by {w.account}</span> : null}
              </th>
              <td class="num" data-field="tasks_done">
                {formatCount(w.tasks_done)}
              </td>
              <td class="num" data-field="busy">
                {formatDuration(w.busy_seconds)}
              </td>
              <td>
                <ShareBar share={share} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// `board` is model.js leaderboardBoard's result (undefined before the first poll: the workers board);
// `query` the chosen { period, by }; `onQuery` takes a change of either.
export function Contributors({ workers, board, query, onQuery }) {
  const accounts = board?.mode === 'accounts';
  // Credits need accounts: without them the board ranks by tasks unless compute time is chosen.
  const workersBy = query.by === 'compute' ? 'compute' : 'tasks';
  return (
    <section aria-labelledby="contributors-title" class="card" data-testid="contributors" data-mode={accounts ? 'accounts' : 'workers'}>
      <h2 id="contributors-title">Contributors</h2>
      {accounts ? (
        <Picker
          legend="Period"
          name="board-period"
          options={LEADERBOARD_PERIODS}
          value={query.period}
          onChange={(period) => onQuery({ period })}
        />
      ) : null}
      <Picker
        legend="Rank by"
        name="rank-by"
        options={LEADERBOARD_MEASURES.filter((m) => accounts || !m.accountsOnly)}
        value={accounts ? query.by : workersBy}
        onChange={(by) => onQuery({ by })}
      />
      {accounts ? (
        <AccountsBoard board={board} query={query} />
      ) : (
        <>
          {board ? (
            <p class="note" data-testid="contributors-note" data-reason={board.reason}>
              {fallbackNote(board.reason)}
            </p>
          ) : null}
          <WorkersBoard workers={workers} by={workersBy} />
        </>
      )}
    </section>
  );
}
