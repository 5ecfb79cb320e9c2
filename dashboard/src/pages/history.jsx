// Services and their history (#/history?service=&range=): each service's queue now (with a purge
// action), and for the chosen service — or the whole pool — throughput, errors, latency (p50/p99)
// and queue depth over 1 h, 24 h or 7 d from the broker's per-minute statistics (GET
// /api/admin/history). Charts are the overview's uPlot charts; every number is also in a table.
import { useMemo } from 'preact/hooks';
import { usePolled } from '../hooks.js';
import { ScrollTable } from '../components/scroll_table.jsx';
import { LoadError, useActions } from '../components/confirm_dialog.jsx';
import { HistoryTable, TimeChart } from '../components/charts.jsx';
import { HISTORY_RANGES, historyColumns, historyTotals, tasksHref } from '../console.js';
import { formatCount, formatMs, formatRate } from '../model.js';

const RANGE_LABELS = { '1h': 'Last hour', '24h': 'Last 24 hours', '7d': 'Last 7 days' };
const RANGE_SPAN_S = { '1h': 3600, '24h': 86400, '7d': 7 * 86400 };
const SHORT = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const LONG = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

function Charts({ doc, range }) {
  const c = useMemo(() => historyColumns(doc), [doc]);
  const totals = historyTotals(c);
  const stepLabel = c.step >= 3600 ? `${c.step / 3600} h step` : `${c.step / 60} min step`;
  const fmt = range === '1h' ? SHORT : LONG;
  const common = { x: c.x, xLabel: 'Time', timeFormat: fmt, minSpanS: RANGE_SPAN_S[range] ?? 3600 };
  const counts = useMemo(
    () => [
      { key: 'submitted', label: 'Submitted', color: '--series-1', values: c.submitted },
      { key: 'completed', label: 'Completed', color: '--series-2', values: c.completed },
      { key: 'errors', label: 'Failed or dead', color: '--series-3', values: c.errors },
    ],
    [c],
  );
  const throughput = useMemo(() => [{ key: 'throughput', label: 'Completed per second', color: '--series-2', values: c.throughput }], [c]);
  const latency = useMemo(
    () => [
      { key: 'run_p50', label: 'Run time p50', color: '--series-2', values: c.runP50 },
      { key: 'run_p99', label: 'Run time p99', color: '--series-4', values: c.runP99 },
      { key: 'wait_p50', label: 'Queue wait p50', color: '--series-1', values: c.waitP50 },
      { key: 'wait_p99', label: 'Queue wait p99', color: '--series-3', values: c.waitP99 },
    ],
    [c],
  );
  const depth = useMemo(() => [{ key: 'depth', label: 'Queue depth', color: '--series-1', values: c.depth }], [c]);
  const who = doc.service ? doc.service : 'the whole pool';
  return (
    <div class="charts" data-testid="history-charts">
      <p class="filter-count" data-testid="history-totals" data-submitted={totals.submitted} data-completed={totals.completed} data-errors={totals.errors}>
        {RANGE_LABELS[range]} for {who} ({c.x.length} points, {stepLabel}): {formatCount(totals.submitted)} submitted, {formatCount(totals.completed)} completed,{' '}
        {formatCount(totals.errors)} failed or dead; deepest queue {formatCount(totals.maxDepth)}.
      </p>
      <h3>Tasks per step</h3>
      <TimeChart {...common} label={`Tasks per step, ${RANGE_LABELS[range]}: ${formatCount(totals.submitted)} submitted, ${formatCount(totals.completed)} completed, ${formatCount(totals.errors)} failed or dead.`} series={counts} format={formatCount} />
      <HistoryTable {...common} caption="Tasks per step" series={counts} format={formatCount} testid="history-counts-table" />
      <h3>Throughput</h3>
      <TimeChart {...common} label={`Completed tasks per second, ${RANGE_LABELS[range]}.`} series={throughput} format={formatRate} />
      <HistoryTable {...common} caption="Throughput" series={throughput} format={formatRate} testid="history-throughput-table" />
      <h3>Latency</h3>
      <TimeChart {...common} label={`Run time and queue wait percentiles, ${RANGE_LABELS[range]}; highest run time p99 ${formatMs(totals.maxRunP99)}.`} series={latency} format={formatMs} />
      <HistoryTable {...common} caption="Latency" series={latency} format={formatMs} testid="history-latency-table" />
      <h3>Queue depth</h3>
      <TimeChart {...common} label={`Queue depth at the end of each step, ${RANGE_LABELS[range]}; deepest ${formatCount(totals.maxDepth)}.`} series={depth} format={formatCount} />
      <HistoryTable {...common} caption="Queue depth" series={depth} format={formatCount} testid="history-depth-table" />
    </div>
  );
}

export function HistoryPage({ client, route, navigate, servicesDoc, onChanged }) {
  const service = route.query.service ?? '';
  const range = route.query.range ?? '1h';
  const params = new URLSearchParams({ service, range });
  const polled = usePolled(client, `/api/admin/history?${params}`, 5000);
  const actions = useActions(() => {
    polled.reload();
    onChanged?.();
  });
  const services = servicesDoc?.services ?? [];
  const set = (change) => navigate({ page: 'history', query: { service, range, ...change } });
  const purge = (s) =>
    actions.ask({
      title: 'Purge queue',
      text: `Cancel every queued task of ${s.name} (${formatCount(s.queue_depth)} now)? Running tasks go on. The purged tasks end cancelled with error code "purged".`,
      confirmLabel: 'Purge the queue',
      danger: true,
      run: () => client.request(`/api/admin/services/${encodeURIComponent(s.name)}/purge`, { method: 'POST' }),
      done: (b) => `Purged ${formatCount(b.purged)} queued task(s) of ${b.service ?? s.name}.`,
    });
  return (
    <>
      <section class="card" aria-labelledby="svc-title" data-page="services" data-loaded={String(!!servicesDoc)}>
        <h2 id="svc-title">Services</h2>
        <p class="section-note">Choose a service to see its history. Queues refresh every 2 s.</p>
        {actions.view}
        <ScrollTable label="Services" testid="services-history-table" columns={['Service', ['Queued', 'num'], ['Running', 'num'], ['Completed', 'num'], ['Failed', 'num'], ['Dead', 'num'], 'Actions']}>
              <tr data-service="" aria-current={service === '' ? 'true' : undefined} class={service === '' ? 'current' : ''}>
                <th scope="row">
                  <a href={`#/history?range=${range}`}>Whole pool</a>
                </th>
                <td class="num">{formatCount(services.reduce((n, s) => n + (s.queue_depth ?? 0), 0))}</td>
                <td class="num">{formatCount(services.reduce((n, s) => n + (s.in_flight ?? 0), 0))}</td>
                <td class="num">{formatCount(services.reduce((n, s) => n + (s.counters?.completed ?? 0), 0))}</td>
                <td class="num">{formatCount(services.reduce((n, s) => n + (s.counters?.failed ?? 0), 0))}</td>
                <td class="num">{formatCount(services.reduce((n, s) => n + (s.counters?.dead ?? 0), 0))}</td>
                <td />
              </tr>
              {services.map((s) => (
                <tr key={s.name} data-service={s.name} aria-current={service === s.name ? 'true' : undefined} class={service === s.name ? 'current' : ''}>
                  <th scope="row">
                    <a href={`#/history?service=${encodeURIComponent(s.name)}&range=${range}`}>{s.name}</a>
                  </th>
                  <td class="num" data-field="queue_depth">
                    {formatCount(s.queue_depth)}
                  </td>
                  <td class="num" data-field="in_flight">
                    {formatCount(s.in_flight)}
                  </td>
                  <td class="num" data-field="completed">
                    {formatCount(s.counters?.completed)}
                  </td>
                  <td class="num" data-field="failed">
                    {formatCount(s.counters?.failed)}
                  </td>
                  <td class="num" data-field="dead">
                    <a href={tasksHref({ service: s.name, status: 'dead' })} aria-label={`${formatCount(s.counters?.dead)} dead tasks of ${s.name}`}>
                      {formatCount(s.counters?.dead)}
                    </a>
                  </td>
                  <td class="row-actions">
                    <button type="button" class="secondary danger-text" disabled={!s.queue_depth} onClick={() => purge(s)} aria-label={`Purge queue of ${s.name}`} data-action="purge">
                      Purge queue
                    </button>
                  </td>
                </tr>
              ))}
        </ScrollTable>
      </section>
      <section class="card" aria-labelledby="hist-title" data-page="history" data-loaded={String(!!polled.data)}>
        <h2 id="hist-title">History of {service || 'the whole pool'}</h2>
        <fieldset class="segmented">
          <legend>Range</legend>
          {HISTORY_RANGES.map((r) => (
            <label key={r}>
              <input type="radio" name="history-range" value={r} checked={range === r} onChange={() => set({ range: r })} />
              {RANGE_LABELS[r]}
            </label>
          ))}
        </fieldset>
        <LoadError error={polled.error} status={polled.status} hasData={!!polled.data} />
        {polled.data ? <Charts doc={polled.data} range={range} /> : !polled.error ? <p class="placeholder">Loading the history…</p> : null}
      </section>
    </>
  );
}
