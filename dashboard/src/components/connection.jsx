// Connection state: a small status in the header (live, or what is wrong) and, when something is
// wrong, a banner that says it plainly and how old the data on screen is.
const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

const LABELS = {
  connecting: 'Connecting…',
  live: 'Live',
  'gateway-down': 'Gateway unreachable',
  'broker-down': 'Broker unreachable',
  auth: 'Admin key needed',
  error: 'Error',
};

export function ConnectionStatus({ conn, refreshMs }) {
  const updated = conn.lastOk ? TIME.format(conn.lastOk) : null;
  return (
    <p class={`conn conn-${conn.state}`} data-testid="connection" data-state={conn.state}>
      <span class="conn-dot" aria-hidden="true" />
      <span>{LABELS[conn.state] ?? conn.state}</span>
      {updated ? (
        <span class="conn-time">
          {' '}
          · updated <time dateTime={new Date(conn.lastOk).toISOString()}>{updated}</time>
        </span>
      ) : null}
      <span class="visually-hidden"> (refreshes every {refreshMs / 1000} seconds)</span>
    </p>
  );
}

export function ConnectionBanner({ conn, hasData, onEnterKey }) {
  if (conn.state === 'live' || conn.state === 'connecting') return null;
  const stale = hasData && conn.lastOk
    ? ` The figures below are from ${TIME.format(conn.lastOk)} and are not current.`
    : '';
  const headline = {
    'gateway-down': 'The gateway cannot be reached.',
    'broker-down': 'The broker cannot be reached.',
    auth: 'This dashboard needs the admin API key.',
    error: 'The admin API answered with an error.',
  }[conn.state];
  return (
    <div class={`banner banner-${conn.state}`} role="alert" data-testid="banner" data-state={conn.state}>
      <p>
        <strong>{headline}</strong> {conn.message}
        {stale}
        {conn.state !== 'auth' ? ` Retrying since ${TIME.format(conn.since)}.` : ''}
      </p>
      {conn.state === 'auth' ? (
        <button type="button" onClick={onEnterKey}>
          Enter admin key
        </button>
      ) : null}
    </div>
  );
}
