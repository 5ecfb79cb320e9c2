// Services: who provides each one, its queue, and what a synchronous call would get right now — a
// service without a live provider answers 503 (asynchronous tasks wait in its queue instead).
import { formatCount, formatDuration, formatMs, serviceRows, tierLabel } from '../model.js';

export function ServicesTable({ services, workers }) {
  const rows = serviceRows(services, workers);
  const unavailable = rows.filter((r) => !r.available).length;
  return (
    <section aria-labelledby="services-title" class="card">
      <h2 id="services-title">Services and queues</h2>
      <p class="section-note">
        {formatCount(rows.length)} services known · <span data-testid="services-unavailable">{formatCount(unavailable)}</span>{' '}
        without a provider (calls get 503)
      </p>
      {rows.length === 0 ? (
        <p class="empty">No services are known yet.</p>
      ) : (
        <div class="table-scroll" tabIndex={0} role="region" aria-labelledby="services-title">
          <table class="data" data-testid="services-table">
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col">Providers</th>
                <th scope="col" class="num">Queue depth</th>
                <th scope="col" class="num">Running</th>
                <th scope="col" class="num">Oldest wait</th>
                <th scope="col" class="num">Completed</th>
                <th scope="col" class="num">Run p50</th>
                <th scope="col">Calls now get</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.name} data-service={r.name} data-available={String(r.available)}>
                  <th scope="row">
                    {r.name}
                    {r.generic ? <span class="tag">generic · {tierLabel(1)}{r.maxTier > 1 ? `–${tierLabel(r.maxTier)}` : ''}</span> : null}
                  </th>
                  <td>
                    <span data-field="providers">{formatCount(r.providers)}</span>
                    {r.providerNames.length ? <span class="names">{r.providerNames.join(', ')}</span> : null}
                  </td>
                  <td class="num" data-field="queue_depth">
                    {formatCount(r.queueDepth)}
                  </td>
                  <td class="num" data-field="in_flight">
                    {formatCount(r.inFlight)}
                  </td>
                  <td class="num">{r.queueDepth > 0 ? formatDuration(r.oldestWaitS) : '—'}</td>
                  <td class="num" data-field="completed">
                    {formatCount(r.completed)}
                  </td>
                  <td class="num">{r.completed > 0 ? formatMs(r.runP50) : '—'}</td>
                  <td data-field="calls">
                    {r.available ? (
                      <span class="pill pill-ok">served</span>
                    ) : (
                      <span class="pill pill-bad">503 · no provider</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
