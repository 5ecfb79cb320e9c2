// Accounts (#/accounts?account=name): every account with its balance, and for the chosen one its keys
// by prefix, a new key (shown once, here only) and revoking a key. A pool without a database has no
// accounts (409): the page says so. Refreshes every 5 s.
import { useState } from 'preact/hooks';
import { usePolled } from '../hooks.js';
import { ScrollTable } from '../components/scroll_table.jsx';
import { LoadError, useActions } from '../components/confirm_dialog.jsx';
import { formatTime, workerHref } from '../console.js';
import { formatCount, formatCredits } from '../model.js';

const SCOPES = ['client', 'contributor', 'admin'];

function AccountDetail({ client, name, onChanged }) {
  const enc = encodeURIComponent(name);
  const polled = usePolled(client, `/api/admin/accounts/${enc}`, 5000);
  const [created, setCreated] = useState(null); // the key just made, shown once
  const actions = useActions((body, action) => {
    if (action.kind === 'create') setCreated(body);
    polled.reload();
    onChanged();
  });
  const a = polled.data;
  const [keyName, setKeyName] = useState('');
  const [scopes, setScopes] = useState(['client']);
  const createKey = (e) => {
    e.preventDefault();
    setCreated(null);
    const body = { scopes, ...(keyName.trim() ? { name: keyName.trim() } : {}) };
    actions.ask({
      kind: 'create',
      title: 'Create API key',
      text: `Make a new key for ${name} with scopes ${scopes.join(', ')}${body.name ? ` named "${body.name}"` : ''}? It is shown once.`,
      confirmLabel: 'Create the key',
      run: () => client.request(`/api/admin/accounts/${enc}/keys`, { method: 'POST', body }),
      done: (b) => `Key ${b.prefix} created for ${b.account}. Copy it now: it is not shown again.`,
    });
  };
  return (
    <section class="card" aria-labelledby="account-title" data-testid="account-detail" data-account={name} data-loaded={String(!!a)}>
      <h2 id="account-title">Account {name}</h2>
      <LoadError error={polled.error} status={polled.status} hasData={!!a} />
      {a ? (
        <>
          <dl class="facts">
            <div>
              <dt>Balance</dt>
              <dd data-field="balance">{formatCredits(a.balance ?? a.credits)}</dd>
            </div>
            <div>
              <dt>Role</dt>
              <dd>{a.role}</dd>
            </div>
            <div>
              <dt>Earned (all time)</dt>
              <dd>{formatCredits(a.earned?.all)}</dd>
            </div>
            <div>
              <dt>Spent (all time)</dt>
              <dd>{formatCredits(a.spent?.all)}</dd>
            </div>
            <div>
              <dt>Created</dt>
              <dd>{formatTime(a.created_at)}</dd>
            </div>
          </dl>
          {actions.view}
          {created ? (
            <div class="new-key" role="status" data-testid="new-key">
              <p>
                New key for {created.account} (prefix <span class="mono">{created.prefix}</span>), shown this once:
              </p>
              <input class="mono" readOnly value={created.key} aria-label="The new API key" data-testid="new-key-value" onFocus={(e) => e.currentTarget.select()} />
              <button type="button" class="secondary" onClick={() => setCreated(null)}>
                I have copied it
              </button>
            </div>
          ) : null}
          <form class="filters" onSubmit={createKey} aria-label="Create an API key">
            <div class="field">
              <label for="key-name">New key's name</label>
              <input id="key-name" type="search" value={keyName} onInput={(e) => setKeyName(e.currentTarget.value)} autocomplete="off" />
            </div>
            <fieldset class="segmented">
              <legend>Scopes</legend>
              {SCOPES.map((s) => (
                <label key={s}>
                  <input
                    type="checkbox"
                    checked={scopes.includes(s)}
                    onChange={(e) => setScopes((list) => (e.currentTarget.checked ? [...list, s] : list.filter((x) => x !== s)))}
                  />
                  {s}
                </label>
              ))}
            </fieldset>
            <button type="submit" data-testid="create-key" disabled={scopes.length === 0}>
              Create key
            </button>
          </form>
          <h3>Keys</h3>
          {(a.keys ?? []).length === 0 ? (
            <p class="empty">No keys.</p>
          ) : (
            <div class="table-scroll" tabIndex={0} role="region" aria-label={`Keys of ${name}`}>
              <table data-testid="keys-table">
                <thead>
                  <tr>
                    <th scope="col">Prefix</th>
                    <th scope="col">Name</th>
                    <th scope="col">Scopes</th>
                    <th scope="col">Created</th>
                    <th scope="col">Last used</th>
                    <th scope="col">State</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {a.keys.map((k) => (
                    <tr key={k.prefix} data-prefix={k.prefix} data-revoked={String(!!k.revoked)}>
                      <th scope="row" class="mono">
                        {k.prefix}
                      </th>
                      <td>{k.name || '—'}</td>
                      <td>{(k.scopes ?? []).join(', ')}</td>
                      <td>{formatTime(k.created_at)}</td>
                      <td>{formatTime(k.last_used_at)}</td>
                      <td>{k.revoked ? <span class="pill pill-bad">revoked</span> : <span class="pill pill-ok">live</span>}</td>
                      <td class="row-actions">
                        {k.revoked ? null : (
                          <button
                            type="button"
                            class="secondary danger-text"
                            aria-label={`Revoke key ${k.prefix}`}
                            data-action="revoke-key"
                            onClick={() =>
                              actions.ask({
                                title: 'Revoke API key',
                                text: `Revoke key ${k.prefix}${k.name ? ` ("${k.name}")` : ''} of ${name}? Every gateway refuses it within seconds.`,
                                confirmLabel: 'Revoke the key',
                                danger: true,
                                run: () => client.request(`/api/admin/keys/${encodeURIComponent(k.prefix)}`, { method: 'DELETE' }),
                                done: (b) => `Key ${b.prefix ?? k.prefix} revoked.`,
                              })
                            }
                          >
                            Revoke
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <h3>Workers</h3>
          {(a.workers ?? []).length === 0 ? (
            <p class="empty">No worker credentials.</p>
          ) : (
            <ul class="plain">
              {a.workers.map((w) => (
                <li key={w.key ?? w.worker_id}>
                  <a href={workerHref(w.worker_id)}>{w.name || w.worker_id}</a> {w.connected ? <span class="pill pill-ok">connected</span> : <span class="pill">not connected</span>}
                  {w.revoked ? <span class="pill pill-bad">revoked</span> : null}
                </li>
              ))}
            </ul>
          )}
        </>
      ) : null}
    </section>
  );
}

export function AccountsPage({ client, route }) {
  const polled = usePolled(client, '/api/admin/accounts', 5000);
  const selected = route.query.account ?? '';
  const accounts = polled.data?.accounts ?? [];
  const noAccounts = polled.status === 409;
  return (
    <>
      <section class="card" aria-labelledby="accounts-title" data-page="accounts" data-loaded={String(!!polled.data || noAccounts)}>
        <h2 id="accounts-title">Accounts</h2>
        {noAccounts ? (
          <p class="note" data-testid="no-accounts">
            This pool has no accounts: its broker runs without a database ({polled.error}).
          </p>
        ) : (
          <LoadError error={polled.error} status={polled.status} hasData={!!polled.data} />
        )}
        {polled.data ? (
          <ScrollTable label="Accounts" testid="accounts-table" columns={['Account', 'Role', ['Balance', 'num'], ['Live keys', 'num'], ['Workers', 'num'], 'Created']}>
                {accounts.map((a) => (
                  <tr key={a.name} data-account={a.name} class={a.name === selected ? 'current' : ''} aria-current={a.name === selected ? 'true' : undefined}>
                    <th scope="row">
                      <a href={`#/accounts?account=${encodeURIComponent(a.name)}`}>{a.name}</a>
                    </th>
                    <td>{a.role}</td>
                    <td class="num" data-field="credits">
                      {formatCredits(a.credits)}
                    </td>
                    <td class="num" data-field="keys">
                      {formatCount(a.keys)}
                    </td>
                    <td class="num" data-field="workers">
                      {formatCount(a.workers)}
                    </td>
                    <td>{formatTime(a.created_at)}</td>
                  </tr>
                ))}
          </ScrollTable>
        ) : null}
      </section>
      {selected && !noAccounts ? <AccountDetail key={selected} client={client} name={selected} onChanged={polled.reload} /> : null}
    </>
  );
}
