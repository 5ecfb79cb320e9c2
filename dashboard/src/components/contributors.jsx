// The contributors board: workers ranked by what they gave the pool — tasks completed, or compute
// (busy) time — with each one's share of the total.
import { useState } from 'preact/hooks';
import { formatCount, formatDuration, formatPercent, rankContributors, tierLabel } from '../model.js';

export function Contributors({ workers }) {
  const [by, setBy] = useState('tasks');
  const ranked = rankContributors(workers, by);
  return (
    <section aria-labelledby="contributors-title" class="card">
      <h2 id="contributors-title">Contributors</h2>
      <fieldset class="segmented">
        <legend>Rank by</legend>
        {[
          ['tasks', 'Tasks completed'],
          ['busy', 'Compute time'],
        ].map(([value, label]) => (
          <label key={value}>
            <input type="radio" name="rank-by" value={value} checked={by === value} onChange={() => setBy(value)} />
            {label}
          </label>
        ))}
      </fieldset>
      {ranked.length === 0 ? (
        <p class="empty">Nobody has contributed yet.</p>
      ) : (
        <div class="table-scroll" tabIndex={0} role="region" aria-labelledby="contributors-title">
          <table class="data" data-testid="contributors-table">
            <thead>
              <tr>
                <th scope="col" class="num">Rank</th>
                <th scope="col">Worker</th>
                <th scope="col" class="num">Tasks completed</th>
                <th scope="col" class="num">Compute time</th>
                <th scope="col">Share of {by === 'busy' ? 'compute time' : 'tasks'}</th>
              </tr>
            </thead>
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
                    <div class="share">
                      <div class="bar-track" aria-hidden="true">
                        <div class="bar-fill" style={{ width: formatPercent(share) }} />
                      </div>
                      <span>{formatPercent(share)}</span>
                    </div>
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
