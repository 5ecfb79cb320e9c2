// Dead letters (#/dead-letters): dead tasks grouped by service and error code, largest group first,
// each linked to its tasks in the browser, with bulk retry and discard per group or for all of them
// (each confirmed). Refreshes every 5 s.
import { usePolled } from '../hooks.js';
import { ScrollTable } from '../components/scroll_table.jsx';
import { LoadError, useActions } from '../components/confirm_dialog.jsx';
import { bulkBody, formatTime, groupKey, tasksHref } from '../console.js';
import { formatCount } from '../model.js';

function describe(group) {
  if (!group) return 'every dead task';
  return `the dead tasks of ${group.service}${group.error_code ? ` with error ${group.error_code}` : ' without an error code'}`;
}

export function DeadLettersPage({ client }) {
  const polled = usePolled(client, '/api/admin/dead-letters', 5000);
  const actions = useActions(() => polled.reload());
  const doc = polled.data;
  const groups = doc?.groups ?? [];
  const bulk = (verb, group) => {
    const count = group ? group.count : doc?.total ?? 0;
    const body = bulkBody(group);
    actions.ask({
      title: verb === 'retry' ? 'Retry dead tasks' : 'Discard dead tasks',
      text: `${verb === 'retry' ? 'Put back in their queues' : 'Discard'} ${describe(group)}: ${formatCount(count)} task(s) now (at most ${formatCount(body.limit)} in one go)?`,
      confirmLabel: verb === 'retry' ? 'Retry them' : 'Discard them',
      danger: verb === 'discard',
      run: () => client.request(`/api/admin/tasks/${verb}`, { method: 'POST', body }),
      done: (b) => `${verb === 'retry' ? 'Retried' : 'Discarded'} ${formatCount(b.done)} of ${formatCount(b.matched)} matching dead task(s).`,
    });
  };
  return (
    <section class="card" aria-labelledby="dead-title" data-page="dead-letters" data-loaded={String(!!doc)}>
      <h2 id="dead-title">Dead letters</h2>
      <p class="section-note">Tasks that used up their attempts, by service and error code. Refreshes every 5 s.</p>
      <LoadError error={polled.error} status={polled.status} hasData={!!doc} />
      {doc ? (
        <>
          <p class="filter-count">
            <strong data-testid="dead-total">{formatCount(doc.total)}</strong> dead task(s) in {formatCount(groups.length)} group(s).{' '}
            <a href={tasksHref({ status: 'dead' })}>See them all</a>
          </p>
          {actions.view}
          {groups.length === 0 ? (
            <p class="empty">No dead tasks.</p>
          ) : (
            <>
              <div class="actions" role="group" aria-label="Every dead task">
                <button type="button" onClick={() => bulk('retry', null)} data-testid="retry-all">
                  Retry all
                </button>
                <button type="button" class="danger" onClick={() => bulk('discard', null)} data-testid="discard-all">
                  Discard all
                </button>
              </div>
              <ScrollTable label="Dead letter groups" testid="dead-groups" columns={['Service', 'Error code', ['Tasks', 'num'], 'Oldest', 'Newest', 'Actions']}>
                    {groups.map((g) => (
                      <tr key={groupKey(g)} data-service={g.service} data-error-code={g.error_code ?? ''}>
                        <th scope="row">{g.service}</th>
                        <td data-field="error_code">{g.error_code || '—'}</td>
                        <td class="num" data-field="count">
                          <a href={tasksHref({ status: 'dead', service: g.service, error_code: g.error_code ?? '' })}>{formatCount(g.count)}</a>
                        </td>
                        <td>{formatTime(g.oldest)}</td>
                        <td>{formatTime(g.newest)}</td>
                        <td class="row-actions">
                          <button type="button" class="secondary" onClick={() => bulk('retry', g)} aria-label={`Retry ${describe(g)}`} data-action="retry">
                            Retry
                          </button>
                          <button type="button" class="secondary danger-text" onClick={() => bulk('discard', g)} aria-label={`Discard ${describe(g)}`} data-action="discard">
                            Discard
                          </button>
                        </td>
                      </tr>
                    ))}
              </ScrollTable>
            </>
          )}
        </>
      ) : !polled.error ? (
        <p class="placeholder">Loading dead letters…</p>
      ) : null}
    </section>
  );
}
