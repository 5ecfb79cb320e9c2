// One task (#/tasks/{id}): status, times, error, payload and result (pretty JSON, text, or size and
// type with a download link), and every attempt with its worker and outcome. Polled every second
// while the task can still change, every 5 s once it has ended. Actions: cancel (while it can run),
// retry or discard (when dead).
import { useRef } from 'preact/hooks';
import { usePolled } from '../hooks.js';
import { ScrollTable } from '../components/scroll_table.jsx';
import { LoadError, useActions } from '../components/confirm_dialog.jsx';
import { StatusPill } from './tasks.jsx';
import { attemptRows, bodyView, formatBytes, formatTime, isTerminal, tasksHref, workerHref } from '../console.js';
import { formatMs } from '../model.js';

// A button that asks for confirmation (the page's useActions dialog) before `run`.
function ActionButton({ actions, testid, label, danger = false, title, text, confirmLabel, run, done }) {
  return (
    <button
      type="button"
      class={danger ? 'danger' : undefined}
      data-testid={testid}
      onClick={() => actions.ask({ title, text, confirmLabel, danger, run, done })}
    >
      {label}
    </button>
  );
}

function Body({ title, view, testid }) {
  return (
    <section aria-labelledby={`${testid}-title`} class="body-view" data-testid={testid} data-kind={view.kind}>
      <h3 id={`${testid}-title`}>{title}</h3>
      {view.kind === 'none' ? (
        <p class="empty">None yet.</p>
      ) : (
        <>
          <p class="body-meta">
            <span data-field="type">{view.type}</span> · <span data-field="bytes">{formatBytes(view.bytes)}</span>
            {view.href ? (
              <>
                {' '}
                · <a href={view.href} download>
                  Download
                </a>
              </>
            ) : null}
          </p>
          {view.kind === 'binary' ? (
            <p class="empty">{view.truncated ? 'Too large to show here: download it.' : 'Binary content: download it to look inside.'}</p>
          ) : (
            <pre class="json" tabIndex={0} aria-label={`${title} content`} data-field="text">
              {view.text}
            </pre>
          )}
        </>
      )}
    </section>
  );
}

export function TaskPage({ client, route }) {
  const id = route.id;
  const enc = encodeURIComponent(id);
  // ≤ 1 s while it may change (the contract's live status); 5 s once it ended.
  const endedRef = useRef(false);
  const polled = usePolled(client, `/api/tasks/${enc}?detail=1`, endedRef.current ? 5000 : 1000);
  const task = polled.data;
  const actions = useActions(() => polled.reload());
  const ended = task ? isTerminal(task.status) : false;
  endedRef.current = ended;
  const rows = attemptRows(task?.attempt_log);
  const canCancel = task && !ended;
  return (
    <section class="card" aria-labelledby="task-title" data-page="task" data-loaded={String(!!task)} data-status={task?.status ?? ''}>
      <h2 id="task-title">
        Task <span class="mono">{id}</span>
      </h2>
      <p class="section-note">
        <a href={tasksHref(task?.service ? { service: task.service } : {})}>All tasks{task?.service ? ` of ${task.service}` : ''}</a>
        {ended ? '' : ' · live: refreshes every second while the task runs'}
      </p>
      <LoadError error={polled.error} status={polled.status} hasData={!!task} />
      {task ? (
        <>
          <dl class="facts" data-testid="task-facts">
            <div>
              <dt>Status</dt>
              <dd data-field="status">
                <StatusPill status={task.status} />
                {task.progress != null && !ended ? ` ${Math.round(task.progress * 100)}%` : ''}
              </dd>
            </div>
            <div>
              <dt>Service</dt>
              <dd data-field="service">{task.service}</dd>
            </div>
            <div>
              <dt>Account</dt>
              <dd data-field="owner">{task.owner || '—'}</dd>
            </div>
            <div>
              <dt>Attempts</dt>
              <dd data-field="attempts">
                {task.attempts ?? 0} of {task.max_attempts ?? '—'}
              </dd>
            </div>
            <div>
              <dt>Last worker</dt>
              <dd data-field="worker_id" class="mono">
                {task.worker_id ? <a href={workerHref(task.worker_id)}>{task.worker_id}</a> : '—'}
              </dd>
            </div>
            <div>
              <dt>Priority</dt>
              <dd>{task.priority ?? 0}</dd>
            </div>
            <div>
              <dt>Created</dt>
              <dd data-field="created_at">{formatTime(task.created_at)}</dd>
            </div>
            <div>
              <dt>Started</dt>
              <dd>{formatTime(task.started_at)}</dd>
            </div>
            <div>
              <dt>Ended</dt>
              <dd>{formatTime(task.completed_at)}</dd>
            </div>
            {task.queue_position ? (
              <div>
                <dt>Queue position</dt>
                <dd>{task.queue_position}</dd>
              </div>
            ) : null}
          </dl>
          {task.error || task.error_code ? (
            <div class="task-error" data-testid="task-error">
              <h3>Error</h3>
              <p>
                {task.error_code ? <span class="pill pill-bad" data-field="error_code">{task.error_code}</span> : null} <span data-field="error">{task.error ?? ''}</span>
              </p>
            </div>
          ) : null}
          <div class="actions" role="group" aria-label="Task actions">
            {canCancel ? (
              <ActionButton
                actions={actions}
                testid="action-cancel"
                label="Cancel task"
                danger
                title="Cancel task"
                text={`Cancel task ${id} (${task.service}, ${task.status})? A running attempt is told to stop.`}
                confirmLabel="Cancel the task"
                run={() => client.request(`/api/tasks/${enc}`, { method: 'DELETE' })}
                done={(b) => `Task ${id} is now ${b.status ?? 'cancelled'}.`}
              />
            ) : null}
            {task.status === 'dead' ? (
              <>
                <ActionButton
                  actions={actions}
                  testid="action-retry"
                  label="Retry"
                  title="Retry task"
                  text={`Put dead task ${id} back in the ${task.service} queue with fresh attempts?`}
                  confirmLabel="Retry"
                  run={() => client.request(`/api/admin/tasks/${enc}/retry`, { method: 'POST' })}
                  done={() => `Task ${id} is back in its queue.`}
                />
                <ActionButton
                  actions={actions}
                  testid="action-discard"
                  label="Discard"
                  danger
                  title="Discard task"
                  text={`Discard dead task ${id}? It will not be retried.`}
                  confirmLabel="Discard"
                  run={() => client.request(`/api/admin/tasks/${enc}/discard`, { method: 'POST' })}
                  done={() => `Task ${id} was discarded.`}
                />
              </>
            ) : null}
          </div>
          {actions.view}
          <div class="grid-2 bodies">
            <Body title="Payload" view={bodyView(task, 'payload')} testid="task-payload" />
            <Body title="Result" view={bodyView(task, 'result')} testid="task-result" />
          </div>
          <h3>Attempts</h3>
          {rows.length === 0 ? (
            <p class="empty">No attempt yet.</p>
          ) : (
            <ScrollTable label="Attempts" testid="attempts-table" columns={['#', 'Worker', 'Started', 'Ended', ['Took', 'num'], 'Outcome', 'Error']}>
                  {rows.map((a) => (
                    <tr key={a.attempt} data-attempt={a.attempt} data-outcome={a.outcome}>
                      <th scope="row">{a.attempt}</th>
                      <td class="mono" data-field="worker_id">
                        {a.worker_id ? <a href={workerHref(a.worker_id)}>{a.worker_id}</a> : '—'}
                      </td>
                      <td>{formatTime(a.started_at)}</td>
                      <td>{formatTime(a.ended_at)}</td>
                      <td class="num">{a.duration_ms == null ? '—' : formatMs(a.duration_ms)}</td>
                      <td data-field="outcome">
                        <span class={`pill outcome-${a.outcome}`}>{a.outcome}</span>
                      </td>
                      <td>{[a.error_code, a.error].filter(Boolean).join(': ') || '—'}</td>
                    </tr>
                  ))}
            </ScrollTable>
          )}
        </>
      ) : !polled.error ? (
        <p class="placeholder">Loading the task…</p>
      ) : null}
    </section>
  );
}
