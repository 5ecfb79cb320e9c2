// The headline figures: live workers and their health, queued work, today's requests, throughput and
// latency. Each figure carries data-testid so the browser test can compare it with the admin API.
import { formatCount, formatMs, formatRate, healthCounts } from '../model.js';

function Figure({ label, testid, value, children }) {
  return (
    <div class="figure">
      <dt>{label}</dt>
      <dd>
        <span class="figure-value" data-testid={testid}>
          {value}
        </span>
        {children ? <span class="figure-detail">{children}</span> : null}
      </dd>
    </div>
  );
}

export function Summary({ stats, workers }) {
  const health = healthCounts(stats);
  const today = stats.today ?? {};
  const tp = stats.throughput_per_s ?? {};
  const run = stats.latency_ms?.run_time ?? {};
  const wait = stats.latency_ms?.queue_wait ?? {};
  return (
    <section aria-labelledby="summary-title" class="card">
      <h2 id="summary-title" class="visually-hidden">
        Summary
      </h2>
      <dl class="figures">
        <Figure label="Live workers" testid="live-workers" value={formatCount(stats.workers?.live)}>
          {formatCount(workers.length)} listed
        </Figure>
        <div class="figure">
          <dt>Worker health</dt>
          <dd>
            <ul class="health-counts">
              {['healthy', 'late', 'offline'].map((h) => (
                <li key={h}>
                  <span class={`dot dot-${h}`} aria-hidden="true" />
                  <strong data-testid={`health-${h}`}>{formatCount(health[h])}</strong> {h}
                </li>
              ))}
            </ul>
          </dd>
        </div>
        <Figure label="Queued tasks" testid="queue-depth" value={formatCount(stats.queue_depth)}>
          <span data-testid="in-flight">{formatCount(stats.in_flight)}</span> running
        </Figure>
        <Figure label={`Requests today (${today.date ?? '—'} UTC)`} testid="today-submitted" value={formatCount(today.submitted)}>
          <span data-testid="today-completed">{formatCount(today.completed)}</span> completed ·{' '}
          <span data-testid="today-failed">{formatCount(today.failed)}</span> failed
        </Figure>
        <Figure label="Throughput (last minute)" testid="throughput" value={formatRate(tp.completed_1m)}>
          completed · {formatRate(tp.submitted_1m)} submitted
        </Figure>
        <Figure label={`Run time p50 / p99 (${Math.round((stats.latency_ms?.window_s ?? 300) / 60)} min)`} testid="latency" value={`${formatMs(run.p50)} / ${formatMs(run.p99)}`}>
          queue wait p50 {formatMs(wait.p50)}
        </Figure>
      </dl>
    </section>
  );
}
