// One worker (#/workers/{id}): hardware, services and their health, account, reputation, tasks done,
// the attempts it runs now and its connection history (GET /api/admin/workers/{id}, every 2 s).
// Actions: drain or undrain, revoke its credential, set its trust state, cap its tier.
import { useState } from 'preact/hooks';
import { usePolled } from '../hooks.js';
import { ScrollTable } from '../components/scroll_table.jsx';
import { LoadError, useActions } from '../components/confirm_dialog.jsx';
import { formatTime, hardwareRows, taskHref, tasksHref } from '../console.js';
import { formatAge, formatCount, formatDuration, tierLabel, trustLabel } from '../model.js';

const TRUST_STATES = ['trusted', 'normal', 'quarantined', 'banned'];

export function WorkerPage({ client, route }) {
  const id = route.id;
  const enc = encodeURIComponent(id);
  const polled = usePolled(client, `/api/admin/workers/${enc}`, 2000);
  const actions = useActions(() => polled.reload());
  const [trust, setTrust] = useState('trusted');
  const [cap, setCap] = useState('0');
  const w = polled.data;
  const act = (title, text, run, done, danger = false) => actions.ask({ title, text, run, done, danger, confirmLabel: title });
  const rep = w?.reputation ?? {};
  return (
    <section class="card" aria-labelledby="worker-title" data-page="worker" data-loaded={String(!!w)}>
      <h2 id="worker-title">
        Worker <span class="mono">{id}</span>
      </h2>
      <p class="section-note">
        <a href={tasksHref({ worker: id })}>Tasks this worker ran last</a> · refreshes every 2 s
      </p>
      <LoadError error={polled.error} status={polled.status} hasData={!!w} />
      {w ? (
        <>
          <dl class="facts" data-testid="worker-facts">
            <div>
              <dt>Name</dt>
              <dd data-field="name">{w.name}</dd>
            </div>
            <div>
              <dt>Status</dt>
              <dd data-field="status">
                <span class={`pill status-${w.status}`}>{w.status}</span> <span class={`dot dot-${w.health}`} aria-hidden="true" />
                <span data-field="health">{w.health}</span>
              </dd>
            </div>
            <div>
              <dt>Tier</dt>
              <dd data-field="tier">
                {w.tier} · {tierLabel(w.tier)}
              </dd>
            </div>
            <div>
              <dt>Account</dt>
              <dd data-field="account">{w.account ? <a href={`#/accounts?account=${encodeURIComponent(w.account)}`}>{w.account}</a> : '—'}</dd>
            </div>
            <div>
              <dt>Reputation</dt>
              <dd data-field="reputation">
                {trustLabel(w)}
                {rep.score != null ? ` · score ${Number(rep.score).toFixed(2)}` : ''}
              </dd>
            </div>
            <div>
              <dt>Tasks done</dt>
              <dd data-field="tasks_done">
                {formatCount(w.tasks_done)}
                {w.tasks_failed ? ` (${formatCount(w.tasks_failed)} failed)` : ''}
              </dd>
            </div>
            <div>
              <dt>Running</dt>
              <dd data-field="in_flight">
                {formatCount(w.in_flight)} of {formatCount(w.slots)} slots
              </dd>
            </div>
            <div>
              <dt>Busy time</dt>
              <dd>{formatDuration(w.busy_seconds)}</dd>
            </div>
            <div>
              <dt>Last heartbeat</dt>
              <dd>{formatAge(w.last_heartbeat_age_s)}</dd>
            </div>
            <div>
              <dt>First seen</dt>
              <dd>{formatTime(w.first_seen ?? w.registered_at)}</dd>
            </div>
            <div>
              <dt>Agent</dt>
              <dd>{w.agent_version || '—'}</dd>
            </div>
            <div>
              <dt>Key</dt>
              <dd class="mono">{w.key_fingerprint || '—'}</dd>
            </div>
          </dl>
          <div class="actions" role="group" aria-label="Worker actions">
            {w.status === 'draining' ? (
              <button type="button" data-testid="action-undrain" onClick={() => act('Undrain worker', `Let ${id} take new tasks again?`, () => client.request(`/api/admin/workers/${enc}/undrain`, { method: 'POST' }), () => `${id} takes new tasks again.`)}>
                Undrain
              </button>
            ) : (
              <button
                type="button"
                data-testid="action-drain"
                disabled={w.status === 'offline'}
                onClick={() => act('Drain worker', `${id} finishes what it runs and takes nothing new. Go ahead?`, () => client.request(`/api/admin/workers/${enc}/drain`, { method: 'POST' }), () => `${id} is draining.`)}
              >
                Drain
              </button>
            )}
            <button
              type="button"
              class="danger"
              data-testid="action-revoke"
              onClick={() =>
                act(
                  'Revoke credential',
                  `Revoke ${id}'s credential? It is disconnected at once, its running tasks go to other workers, and its key is refused from now on.`,
                  () => client.request(`/api/admin/workers/${enc}/credential`, { method: 'DELETE' }),
                  (b) => `Credential of ${id} revoked${b.disconnected ? '; the worker was disconnected' : ''}.`,
                  true,
                )
              }
            >
              Revoke credential
            </button>
            <span class="inline-field">
              <label for="trust-state">Trust state</label>
              <select id="trust-state" value={trust} onChange={(e) => setTrust(e.currentTarget.value)}>
                {TRUST_STATES.map((s) => (
                  <option key={s} value={s}>
                    {s}
                  </option>
                ))}
              </select>
              <button
                type="button"
                class="secondary"
                data-testid="action-trust"
                onClick={() =>
                  act(
                    'Set trust state',
                    `Set ${id}'s trust state to "${trust}"?${trust === 'banned' ? ' A banned worker is disconnected and refused.' : ''}`,
                    () => client.request(`/api/admin/workers/${enc}/trust`, { method: 'POST', body: { state: trust } }),
                    (b) => `${id}: ${b.from ?? '?'} → ${b.state ?? trust}.`,
                    trust === 'banned',
                  )
                }
              >
                Apply
              </button>
            </span>
            <span class="inline-field">
              <label for="tier-cap">Tier cap</label>
              <select id="tier-cap" value={cap} onChange={(e) => setCap(e.currentTarget.value)}>
                <option value="0">none</option>
                {[1, 2, 3].map((t) => (
                  <option key={t} value={String(t)}>
                    {t} · {tierLabel(t)}
                  </option>
                ))}
              </select>
              <button
                type="button"
                class="secondary"
                data-testid="action-cap"
                onClick={() =>
                  act(
                    'Cap tier',
                    cap === '0' ? `Lift ${id}'s tier cap?` : `Rank ${id} no better than tier ${cap} (${tierLabel(Number(cap))})?`,
                    () => client.request(`/api/admin/workers/${enc}/credential`, { method: 'PATCH', body: { tier_cap: Number(cap) } }),
                    (b) => `${id}: tier cap ${b.tier_cap ?? cap}${b.applied ? ', applied now' : ''}.`,
                  )
                }
              >
                Apply
              </button>
            </span>
          </div>
          {actions.view}
          <div class="grid-2 worker-grid">
            <div>
              <h3>Hardware</h3>
              <dl class="facts compact" data-testid="worker-hardware">
                {hardwareRows(w.capabilities ?? {}).map(([k, v]) => (
                  <div key={k}>
                    <dt>{k}</dt>
                    <dd>{v}</dd>
                  </div>
                ))}
              </dl>
            </div>
            <div>
              <h3>Services</h3>
              <ul class="plain" data-testid="worker-services">
                {(w.services ?? []).map((s) => {
                  const h = (w.service_health ?? []).find((x) => x.service === s);
                  return (
                    <li key={s} data-service={s}>
                      <a href={`#/history?service=${encodeURIComponent(s)}`}>{s}</a>{' '}
                      {h ? <span class={`pill ${h.healthy ? 'pill-ok' : 'pill-bad'}`}>{h.healthy ? 'healthy' : 'unhealthy'}</span> : <span class="pill">not reported</span>}
                      {h?.detail ? <span class="names">{h.detail}</span> : null}
                    </li>
                  );
                })}
              </ul>
            </div>
          </div>
          <h3>Running now</h3>
          {(w.current_attempts ?? []).length === 0 ? (
            <p class="empty" data-testid="worker-current-empty">
              Nothing running.
            </p>
          ) : (
            <ScrollTable label="Attempts running now" testid="worker-current" columns={['Task', 'Service', ['Attempt', 'num'], 'Started', ['Progress', 'num']]}>
                  {w.current_attempts.map((a) => (
                    <tr key={`${a.task_id}-${a.attempt}`} data-task-id={a.task_id}>
                      <th scope="row" class="mono">
                        <a href={taskHref(a.task_id)}>{a.task_id}</a>
                      </th>
                      <td>{a.service}</td>
                      <td class="num">{a.attempt}</td>
                      <td>{formatTime(a.started_at)}</td>
                      <td class="num">{a.progress == null ? '—' : `${Math.round(a.progress * 100)}%`}</td>
                    </tr>
                  ))}
            </ScrollTable>
          )}
          <h3>Connection history</h3>
          {(w.connections ?? []).length === 0 ? (
            <p class="empty">Nothing recorded.</p>
          ) : (
            <ScrollTable label="Connection history" testid="worker-connections" columns={['When', 'Event', 'Detail']}>
                  {w.connections.map((c, i) => (
                    <tr key={i} data-event={c.event}>
                      <th scope="row">{formatTime(c.at)}</th>
                      <td>{c.event}</td>
                      <td>{c.detail || '—'}</td>
                    </tr>
                  ))}
            </ScrollTable>
          )}
        </>
      ) : !polled.error ? (
        <p class="placeholder">Loading the worker…</p>
      ) : null}
    </section>
  );
}
