// The worker list: every listed worker (offline ones stay, red, until the broker forgets them), sortable
// by any column — the headers are buttons, so the keyboard sorts too — and filterable by text, tier and
// health. Sort and filter survive refreshes because they live here, not in the data.
import { useState } from 'preact/hooks';
import {
  defaultDirection,
  filterWorkers,
  formatAge,
  formatCount,
  sortWorkers,
  tierLabel,
  trustLabel,
  TIERS,
  HEALTHS,
} from '../model.js';

const ROW_LIMIT = 100;

const COLUMNS = [
  { key: 'health', label: 'Health' },
  { key: 'name', label: 'Name' },
  { key: 'worker_id', label: 'ID' },
  { key: 'account', label: 'Contributor' },
  { key: 'key', label: 'Key' },
  { key: 'tier', label: 'Tier' },
  { key: 'simulated', label: 'Simulated' },
  { key: 'services', label: 'Services' },
  { key: 'status', label: 'Status' },
  { key: 'reputation', label: 'Trust' },
  { key: 'load', label: 'Load', num: true },
  { key: 'in_flight', label: 'In flight / slots', num: true },
  { key: 'tasks_done', label: 'Tasks done', num: true },
  { key: 'last_heartbeat', label: 'Last heartbeat', num: true },
];

function SortHeader({ column, sort, onSort }) {
  const active = sort.key === column.key;
  const ariaSort = active ? (sort.dir === 'asc' ? 'ascending' : 'descending') : undefined;
  return (
    <th scope="col" aria-sort={ariaSort} class={column.num ? 'num' : undefined}>
      <button type="button" class="sort" data-sort-key={column.key} onClick={() => onSort(column.key)}>
        {column.label}
        <span class="sort-icon" aria-hidden="true">
          {active ? (sort.dir === 'asc' ? '▲' : '▼') : '↕'}
        </span>
      </button>
    </th>
  );
}

export function WorkersTable({ workers }) {
  const [sort, setSort] = useState({ key: 'tier', dir: 'asc' });
  const [filter, setFilter] = useState({ text: '', tier: '', health: '' });
  const onSort = (key) =>
    setSort((s) => (s.key === key ? { key, dir: s.dir === 'asc' ? 'desc' : 'asc' } : { key, dir: defaultDirection(key) }));
  const shown = sortWorkers(filterWorkers(workers, filter), sort);
  // A large pool lists its first rows until asked for all: a thousand rows take the page seconds to
  // draw on every refresh. The filter and the sort apply to all of them.
  const [all, setAll] = useState(false);
  const listed = all ? shown : shown.slice(0, ROW_LIMIT);
  const set = (field) => (e) => setFilter((f) => ({ ...f, [field]: e.currentTarget.value }));
  return (
    <section aria-labelledby="workers-title" class="card" id="workers" tabIndex={-1}>
      <h2 id="workers-title">Workers</h2>
      <form class="filters" role="search" aria-label="Filter workers" onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="worker-filter">Filter</label>
          <input
            id="worker-filter"
            type="search"
            placeholder="name, id, contributor, service, status…"
            value={filter.text}
            onInput={set('text')}
            autocomplete="off"
          />
        </div>
        <div class="field">
          <label for="worker-tier">Tier</label>
          <select id="worker-tier" value={filter.tier} onChange={set('tier')}>
            <option value="">All tiers</option>
            {TIERS.map((t) => (
              <option key={t.tier} value={String(t.tier)}>
                {t.description}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="worker-health">Health</label>
          <select id="worker-health" value={filter.health} onChange={set('health')}>
            <option value="">Any health</option>
            {HEALTHS.map((h) => (
              <option key={h} value={h}>
                {h}
              </option>
            ))}
          </select>
        </div>
        <p class="filter-count" aria-live="polite" data-testid="workers-count">
          Showing {formatCount(shown.length)} of {formatCount(workers.length)} workers
          {listed.length < shown.length ? ` (the first ${formatCount(listed.length)} listed)` : ''}
        </p>
      </form>
      {workers.length === 0 ? (
        <p class="empty">No worker has registered yet. Start one with rma-worker --broker tcp://BROKER:5555.</p>
      ) : (
        <div class="table-scroll" tabIndex={0} role="region" aria-labelledby="workers-title">
          <table class="data workers" data-testid="workers-table">
            <thead>
              <tr>
                {COLUMNS.map((c) => (
                  <SortHeader key={c.key} column={c} sort={sort} onSort={onSort} />
                ))}
              </tr>
            </thead>
            <tbody>
              {listed.map((w) => (
                <tr key={w.worker_id} data-worker-id={w.worker_id} data-health={w.health} class={`health-row-${w.health}`}>
                  <td data-field="health">
                    <span class={`dot dot-${w.health}`} aria-hidden="true" />
                    {w.health}
                  </td>
                  <th scope="row" data-field="name">
                    {w.name}
                  </th>
                  <td data-field="worker_id" class="mono">
                    {w.worker_id}
                  </td>
                  <td data-field="account">{w.account || '—'}</td>
                  <td data-field="key" class="mono">
                    {w.key ? (
                      <abbr title={w.key} aria-label={`key ${w.key}`}>
                        {w.key_fingerprint || w.key.slice(0, 8)}…
                      </abbr>
                    ) : (
                      '—'
                    )}
                  </td>
                  <td data-field="tier">
                    {w.tier} · {tierLabel(w.tier)}
                  </td>
                  <td data-field="simulated">{w.simulated ? 'yes' : 'no'}</td>
                  <td data-field="services">{(w.services ?? []).join(', ') || '—'}</td>
                  <td data-field="status">
                    <span class={`pill status-${w.status}`}>{w.status}</span>
                  </td>
                  <td data-field="reputation">{trustLabel(w)}</td>
                  <td class="num" data-field="load">
                    {Number(w.load ?? 0).toFixed(2)}
                  </td>
                  <td class="num" data-field="in_flight">
                    {formatCount(w.in_flight)} / {formatCount(w.slots)}
                  </td>
                  <td class="num" data-field="tasks_done">
                    {formatCount(w.tasks_done)}
                    {w.tasks_failed ? <span class="failed"> ({formatCount(w.tasks_failed)} failed)</span> : null}
                  </td>
                  <td class="num" data-field="last_heartbeat">
                    <time dateTime={w.last_heartbeat} title={w.last_heartbeat}>
                      {formatAge(w.last_heartbeat_age_s)}
                    </time>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {listed.length < shown.length ? (
            <button type="button" class="secondary" onClick={() => setAll(true)} data-testid="workers-all">
              List all {formatCount(shown.length)} workers
            </button>
          ) : null}
        </div>
      )}
    </section>
  );
}
