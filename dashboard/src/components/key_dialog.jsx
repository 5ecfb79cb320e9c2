// Asks for the admin API key in a modal <dialog> (focus is trapped and Escape cancels, natively). The
// key is handed to PoolClient, which keeps it in sessionStorage for this tab only.
import { useEffect, useRef } from 'preact/hooks';

export function KeyDialog({ rejected, onSubmit, onCancel }) {
  const dialog = useRef(null);
  const input = useRef(null);
  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal();
    input.current?.focus();
    return () => {
      if (d?.open) d.close();
    };
  }, []);
  const submit = (e) => {
    e.preventDefault();
    const key = input.current?.value ?? '';
    if (key.trim()) onSubmit(key);
  };
  return (
    <dialog
      ref={dialog}
      class="key-dialog"
      aria-labelledby="key-title"
      aria-describedby="key-help"
      onCancel={(e) => {
        e.preventDefault();
        onCancel();
      }}
    >
      <form onSubmit={submit}>
        <h2 id="key-title">Admin API key</h2>
        <p id="key-help">
          {rejected
            ? 'The gateway refused that key. Enter a key with the admin role.'
            : 'The gateway protects its admin API. Enter a key with the admin role.'}{' '}
          It is kept in this tab only (session storage) and sent as the X-API-Key header.
        </p>
        <label for="admin-key">Key</label>
        <input id="admin-key" ref={input} type="password" name="key" autocomplete="off" spellcheck={false} required />
        <div class="dialog-buttons">
          <button type="submit">Use this key</button>
          <button type="button" class="secondary" onClick={onCancel}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}
