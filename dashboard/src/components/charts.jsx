// Throughput and latency over time, per minute, from the stats document's history (the broker keeps
// the last hour). Drawn with uPlot on a canvas; each chart has a text summary for assistive technology
// and its numbers in a table under a disclosure, so nothing is only in the picture.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { formatCount, formatMs, historySeries } from '../model.js';

const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const MIN_SPAN_S = 15 * 60;

function useColorScheme() {
  const query = typeof window !== 'undefined' && window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
  const [dark, setDark] = useState(query ? query.matches : false);
  useEffect(() => {
    if (!query) return undefined;
    const onChange = (e) => setDark(e.matches);
    query.addEventListener('change', onChange);
    return () => query.removeEventListener('change', onChange);
  }, []);
  return dark ? 'dark' : 'light';
}

// The x axis shows at least the last quarter hour, so a young pool's first minutes sit at the right
// edge of a readable axis.
function xRange(x, minSpan = MIN_SPAN_S) {
  const max = x.length ? x[x.length - 1] : Date.now() / 1000;
  return { min: Math.min(x.length ? x[0] : max, max - minSpan), max };
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// One uPlot chart. It is created once per colour scheme and fed new data on every refresh, so a
// refresh never flickers or loses the cursor. The console's history page uses it too (xLabel: the
// step, timeFormat: how x values read).
export function TimeChart({ label, series, x, format, xLabel = 'Minute', timeFormat = TIME, minSpanS = MIN_SPAN_S }) {
  const box = useRef(null);
  const plot = useRef(null);
  const scheme = useColorScheme();
  const data = useMemo(() => [x, ...series.map((s) => s.values)], [x, series]);

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const text = cssVar('--text-muted');
    const grid = cssVar('--grid');
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const opts = {
      width: Math.max(200, el.clientWidth),
      height: 200,
      scales: {
        // Set by xRange() on every update rather than auto-ranged: uPlot stretches a single minute
        // across a thousand days.
        x: { time: true, auto: false, ...xRange(x, minSpanS) },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      legend: { show: true, live: true },
      cursor: { points: { size: 6 } },
      series: [
        { label: xLabel, value: (u, v) => (v == null ? '—' : timeFormat.format(v * 1000)) },
        ...series.map((s) => ({
          label: s.label,
          stroke: cssVar(s.color),
          width: 2,
          points: { show: true, size: 4 },
          value: (u, v) => (v == null ? '—' : format(v)),
        })),
      ],
      axes: [
        { ...axis, space: 90 },
        { ...axis, size: 64, values: (u, vals) => vals.map((v) => format(v)) },
      ],
    };
    plot.current = new uPlot(opts, data, el);
    const resize = new ResizeObserver(() => {
      plot.current?.setSize({ width: Math.max(200, el.clientWidth), height: 200 });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [scheme, series.length]);

  useEffect(() => {
    plot.current?.setData(data);
    plot.current?.setScale('x', xRange(x, minSpanS));
  }, [data]);

  return <div class="chart" ref={box} role="img" aria-label={label} />;
}

export function HistoryTable({ caption, x, series, format, testid, xLabel = 'Minute', timeFormat = TIME }) {
  return (
    <details class="chart-data">
      <summary>Numbers for each {xLabel.toLowerCase()}</summary>
      <div class="table-scroll" tabIndex={0} role="region" aria-label={caption}>
        <table data-testid={testid}>
          <caption class="visually-hidden">{caption}</caption>
          <thead>
            <tr>
              <th scope="col">{xLabel}</th>
              {series.map((s) => (
                <th scope="col" key={s.label}>
                  {s.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {x.map((t, i) => (
              <tr key={t}>
                <th scope="row">
                  <time dateTime={new Date(t * 1000).toISOString()}>{timeFormat.format(t * 1000)}</time>
                </th>
                {series.map((s) => (
                  <td key={s.label} data-series={s.key}>
                    {s.values[i] == null ? '—' : format(s.values[i])}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}

export function HistoryCharts({ stats }) {
  const h = useMemo(() => historySeries(stats.history ?? [], Date.now()), [stats.history]);
  const throughput = useMemo(
    () => [
      { key: 'submitted', label: 'Submitted', color: '--series-1', values: h.submitted },
      { key: 'completed', label: 'Completed', color: '--series-2', values: h.completed },
      { key: 'failed', label: 'Failed', color: '--series-3', values: h.failed },
    ],
    [h],
  );
  const latency = useMemo(
    () => [
      { key: 'run_p50', label: 'Run time p50', color: '--series-2', values: h.runP50 },
      { key: 'run_p99', label: 'Run time p99', color: '--series-4', values: h.runP99 },
      { key: 'wait_p50', label: 'Queue wait p50', color: '--series-1', values: h.waitP50 },
    ],
    [h],
  );
  const sum = (a) => a.reduce((s, v) => s + (v ?? 0), 0);
  const minutes = h.x.length;
  return (
    <section aria-labelledby="history-title" class="card charts">
      <h2 id="history-title">Throughput and latency over time</h2>
      {minutes === 0 ? (
        <p class="empty">No tasks yet: the charts start with the first task.</p>
      ) : (
        <>
          <h3>Tasks per minute</h3>
          <TimeChart
            label={`Tasks per minute over the last ${minutes} minute(s): ${formatCount(sum(h.submitted))} submitted, ${formatCount(sum(h.completed))} completed, ${formatCount(sum(h.failed))} failed.`}
            x={h.x}
            series={throughput}
            format={(v) => formatCount(v)}
          />
          <HistoryTable caption="Tasks per minute" x={h.x} series={throughput} format={(v) => formatCount(v)} testid="throughput-table" />
          <h3>Latency per minute</h3>
          <TimeChart
            label={`Run time and queue wait per minute over the last ${minutes} minute(s).`}
            x={h.x}
            series={latency}
            format={formatMs}
          />
          <HistoryTable caption="Latency per minute" x={h.x} series={latency} format={formatMs} testid="latency-table" />
        </>
      )}
    </section>
  );
}
