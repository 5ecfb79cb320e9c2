// Live workers per tier as horizontal bars. The count is text; the bar only repeats it visually.
import { formatCount, tierBars } from '../model.js';

export function TierBars({ stats, workers }) {
  const rows = tierBars(stats, workers);
  return (
    <section aria-labelledby="tiers-title" class="card">
      <h2 id="tiers-title">Active workers by tier</h2>
      <ul class="tier-bars">
        {rows.map((r) => (
          <li key={r.tier} data-testid={`tier-${r.tier}`}>
            <div class="tier-label">
              <span>{r.description}</span>
              <span>
                <strong data-testid={`tier-${r.tier}-live`}>{formatCount(r.live)}</strong> live
                {r.listed > r.live ? ` · ${formatCount(r.listed - r.live)} offline` : ''}
              </span>
            </div>
            <div class="bar-track" aria-hidden="true">
              <div class={`bar-fill tier-${r.tier}`} style={{ width: `${(r.fraction * 100).toFixed(1)}%` }} />
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}
