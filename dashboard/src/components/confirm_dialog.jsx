// Every console action goes through here: a modal <dialog> that says what will happen and asks to go
// ahead (focus starts on Cancel and stays in the dialog: a modal <dialog> lets Tab leave for the
// browser's own controls, so Tab and Shift+Tab wrap around here; Escape cancels), then a message
// that says what happened — the API's answer or its error — in a live region. useActions() is the
// page's handle: ask({ title, text, confirmLabel, run, done }) where run() returns a getJson result
// and done(body) words the success.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

const FOCUSABLE = 'button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea, a[href], [tabindex]:not([tabindex="-1"])';

// Tab on the last control goes to the first, Shift+Tab on the first to the last.
function trapTab(e) {
  if (e.key !== 'Tab') return;
  const items = [...e.currentTarget.querySelectorAll(FOCUSABLE)];
  if (items.length === 0) return;
  const first = items[0];
  const last = items[items.length - 1];
  if (e.shiftKey && (document.activeElement === first || !e.currentTarget.contains(document.activeElement))) {
    e.preventDefault();
    last.focus();
  } else if (!e.shiftKey && (document.activeElement === last || !e.currentTarget.contains(document.activeElement))) {
    e.preventDefault();
    first.focus();
  }
}

export function ConfirmDialog({ title, text, confirmLabel = 'Confirm', danger = false, busy = false, onConfirm, onCancel, children }) {
  const dialog = useRef(null);
  const cancel = useRef(null);
  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal();
    cancel.current?.focus();
    return () => {
      if (d?.open) d.close();
    };
  }, []);
  return (
    <dialog
      ref={dialog}
      class="key-dialog confirm-dialog"
      aria-labelledby="confirm-title"
      aria-describedby="confirm-text"
      data-testid="confirm-dialog"
      onKeyDown={trapTab}
      onCancel={(e) => {
        e.preventDefault();
        if (!busy) onCancel();
      }}
    >
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!busy) onConfirm();
        }}
      >
        <h2 id="confirm-title">{title}</h2>
        <p id="confirm-text">{text}</p>
        {children}
        <div class="dialog-buttons">
          <button type="submit" class={danger ? 'danger' : ''} data-testid="confirm" disabled={busy}>
            {busy ? 'Working…' : confirmLabel}
          </button>
          <button type="button" class="secondary" ref={cancel} onClick={onCancel} disabled={busy} data-testid="cancel">
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}

// { ask, view }: ask(action) opens the dialog; view is the dialog (when open) and the last result.
// `after` runs once an action succeeded (a page reloads its data).
export function useActions(after = () => {}) {
  const [pending, setPending] = useState(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null); // { ok, text }
  const afterRef = useRef(after);
  afterRef.current = after;
  const ask = useCallback((action) => {
    setResult(null);
    setPending(action);
  }, []);
  const confirm = async () => {
    const action = pending;
    setBusy(true);
    const r = await action.run();
    setBusy(false);
    setPending(null);
    if (r.kind === 'ok') {
      setResult({ ok: true, text: action.done ? action.done(r.body) : `${action.title}: done.`, body: r.body });
      afterRef.current(r.body, action);
    } else {
      setResult({ ok: false, text: `${action.title} failed: ${r.message} (HTTP ${r.status || 'no answer'}).` });
    }
    action.focusAfter?.focus?.();
  };
  const view = (
    <>
      {pending ? (
        <ConfirmDialog
          title={pending.title}
          text={pending.text}
          confirmLabel={pending.confirmLabel}
          danger={pending.danger}
          busy={busy}
          onConfirm={confirm}
          onCancel={() => {
            setPending(null);
            setResult({ ok: false, cancelled: true, text: `${pending.title}: cancelled, nothing was changed.` });
          }}
        >
          {pending.extra}
        </ConfirmDialog>
      ) : null}
      <div aria-live="polite" data-testid="action-result-region">
        {result ? (
          <p class={`action-result ${result.ok ? 'action-ok' : 'action-error'}`} data-testid="action-result" data-ok={String(result.ok)} role={result.ok || result.cancelled ? 'status' : 'alert'}>
            {result.text}
          </p>
        ) : null}
      </div>
    </>
  );
  return { ask, view, result };
}

// A page's "could not load" line, with the last good data's age when there is some.
export function LoadError({ error, status, hasData }) {
  if (!error) return null;
  return (
    <p class="action-result action-error" role="alert" data-testid="load-error">
      {hasData ? 'Refresh failed' : 'Could not load this page'}: {error}
      {status ? ` (HTTP ${status})` : ''}.
    </p>
  );
}
