// The task browser (#/tasks?...): filters by service, status, account, worker, error code and created
// time, newest first, paged by the API's cursor. Filters and the cursor live in the hash; the cursors
// of the pages before this one live in memory (console.js's paging rules). Refreshes every 5 s.
import { useMemo, useState } from 'preact/hooks';
import { usePolled } from '../hooks.js';
import { ScrollTable } from '../components/scroll_table.jsx';
import { LoadError } from '../components/confirm_dialog.jsx';
import { formatCount } from '../model.js';
import {
  TASK_STATUSES,
  formatTime,
  pageBack,
  pageForward,
  pagerState,
  taskHref,
  tasksPath,
  toApiTime,
  toLocalInput,
  trailFor,
  withFilters,
  workerHref,
} from '../console.js';

// Filter set (without cursor) -> the cursors of the pages before the current one, for this tab.
const trails = new Map();

export function StatusPill({ status }) {
  return <span class={`pill task-${status}`}>{status}</span>;
}

function PageButton({ label, testid, enabled, onClick }) {
  return (
    <button type="button" class="secondary" disabled={!enabled} data-testid={testid} onClick={onClick}>
      {label}
    </button>
  );
}

function Filters({ query, services, onApply }) {
  const offset = new Date().getTimezoneOffset();
  // What the fields hold while the user edits them. The page re-renders on every refresh, and a field
  // bound straight to the query would lose what was typed (Preact sets `value` back on each render).
  const [draft, setDraft] = useState(() => ({
    service: query.service ?? '',
    status: query.status ?? '',
    account: query.account ?? '',
    worker: query.worker ?? '',
    error_code: query.error_code ?? '',
    since: toLocalInput(query.since, offset),
    until: toLocalInput(query.until, offset),
  }));
  const field = (name) => {
    const update = (e) => {
      const value = e.currentTarget.value;
      setDraft((d) => ({ ...d, [name]: value }));
    };
    // input for typing, change for a select's choice.
    return { name, value: draft[name], onInput: update, onChange: update };
  };
  const submit = (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const v = (k) => String(f.get(k) ?? '').trim();
    onApply({
      service: v('service'),
      status: v('status'),
      account: v('account'),
      worker: v('worker'),
      error_code: v('error_code'),
      since: toApiTime(v('since'), offset),
      until: toApiTime(v('until'), offset),
    });
  };
  // Keyed by the query so a back/forward shows that entry's filters in the fields.
  return (
    <form class="filters" onSubmit={submit} key={JSON.stringify(query)} aria-label="Task filters" data-testid="task-filters">
      <div class="field">
        <label for="f-service">Service</label>
        <input id="f-service" type="search" list="f-services" {...field('service')} autocomplete="off" />
        <datalist id="f-services">
          {services.map((s) => (
            <option key={s} value={s} />
          ))}
        </datalist>
      </div>
      <div class="field">
        <label for="f-status">Status</label>
        <select id="f-status" {...field('status')}>
          <option value="">any</option>
          {TASK_STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="f-account">Account</label>
        <input id="f-account" type="search" {...field('account')} autocomplete="off" />
      </div>
      <div class="field">
        <label for="f-worker">Worker id</label>
        <input id="f-worker" type="search" {...field('worker')} autocomplete="off" />
      </div>
      <div class="field">
        <label for="f-error">Error code</label>
        <input id="f-error" type="search" {...field('error_code')} autocomplete="off" />
      </div>
      <div class="field">
        <label for="f-since">Created from (local time)</label>
        <input id="f-since" type="datetime-local" step="1" {...field('since')} />
      </div>
      <div class="field">
        <label for="f-until">Created before (local time)</label>
        <input id="f-until" type="datetime-local" step="1" {...field('until')} />
      </div>
      <div class="dialog-buttons">
        <button type="submit" data-testid="apply-filters">
          Apply filters
        </button>
        <button type="button" class="secondary" onClick={() => onApply({ service: '', status: '', account: '', worker: '', error_code: '', since: '', until: '' })}>
          Clear
        </button>
      </div>
    </form>
  );
}

export function TasksPage({ client, route, navigate, services }) {
  const { query } = route;
  const path = tasksPath(query);
  const { data, error, status } = usePolled(client, path, 5000);
  const filterKey = JSON.stringify(withFilters(query, {}));
  const trail = trailFor(trails.get(filterKey) ?? [], query.cursor ?? '');
  const pager = pagerState(trail, query.cursor ?? '', data?.next_cursor);
  const go = (cursor, newTrail) => {
    trails.set(filterKey, newTrail);
    navigate({ page: 'tasks', query: { ...query, cursor } });
  };
  const tasks = data?.tasks ?? [];
  const serviceNames = useMemo(() => services ?? [], [services]);
  return (
    <section class="card" aria-labelledby="tasks-title" data-page="tasks" data-loaded={String(!!data)}>
      <h2 id="tasks-title">Tasks</h2>
      <p class="section-note">Newest first, from the pool's task history. Refreshes every 5 s.</p>
      <Filters query={query} services={serviceNames} onApply={(change) => navigate({ page: 'tasks', query: withFilters(query, change) })} />
      <LoadError error={error} status={status} hasData={!!data} />
      {data ? (
        <>
          <p class="filter-count" data-testid="tasks-count" aria-live="polite">
            {pager.number ? `Page ${pager.number}: ` : ''}
            {formatCount(data.count ?? tasks.length)} task(s){data.next_cursor ? ', more on the next page' : ''}.
          </p>
          {tasks.length === 0 ? (
            <p class="empty">No task matches these filters.</p>
          ) : (
            <ScrollTable label="Tasks" testid="tasks-table" columns={['Task', 'Service', 'Status', 'Account', 'Worker', ['Attempts', 'num'], 'Created', 'Error']}>
                  {tasks.map((t) => (
                    <tr key={t.task_id} data-task-id={t.task_id} data-status={t.status}>
                      <th scope="row" class="mono" data-field="task_id">
                        <a href={taskHref(t.task_id)}>{t.task_id}</a>
                      </th>
                      <td data-field="service">{t.service}</td>
                      <td data-field="status">
                        <StatusPill status={t.status} />
                      </td>
                      <td data-field="account">{t.owner || '—'}</td>
                      <td data-field="worker" class="mono">
                        {t.worker_id ? <a href={workerHref(t.worker_id)}>{t.worker_id}</a> : '—'}
                      </td>
                      <td class="num" data-field="attempts">
                        {t.attempts ?? 0} / {t.max_attempts ?? '—'}
                      </td>
                      <td data-field="created_at">
                        <time dateTime={t.created_at}>{formatTime(t.created_at)}</time>
                      </td>
                      <td data-field="error_code">{t.error_code || '—'}</td>
                    </tr>
                  ))}
            </ScrollTable>
          )}
          <nav class="pager" aria-label="Pages of tasks">
            <PageButton label="First page" enabled={pager.canFirst} onClick={() => go('', [])} />
            <PageButton
              label="Previous page"
              testid="page-back"
              enabled={pager.canBack}
              onClick={() => {
                const b = pageBack(trail);
                go(b.cursor, b.trail);
              }}
            />
            <PageButton
              label="Next page"
              testid="page-next"
              enabled={pager.canNext}
              onClick={() => go(data.next_cursor, pageForward(trail, query.cursor ?? '', data.next_cursor))}
            />
          </nav>
        </>
      ) : !error ? (
        <p class="placeholder">Loading tasks…</p>
      ) : null}
    </section>
  );
}
