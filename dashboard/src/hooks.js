// The console's Preact hooks: the hash route (hashchange, back/forward, reload), and one polled API
// document per page. Each runs on the browser's main thread; the pure rules they apply are in
// console.js.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { formatHash, parseHash } from './console.js';

// A hidden tab still polls, slowly, so a page is current the moment it is looked at again.
const HIDDEN_REFRESH_MS = 30_000;

function currentRoute(previous) {
  const hash = window.location.hash;
  // An in-page anchor (the skip link's #main) is not a navigation: the page stays what it was.
  if (previous && hash && !hash.startsWith('#/')) return previous;
  return parseHash(hash);
}

// The route and a navigate(state, { replace }) that writes it to the hash (pushing a history entry
// unless replace), so back/forward and reload give the same page and filters.
export function useRoute() {
  const [route, setRoute] = useState(() => currentRoute(null));
  useEffect(() => {
    const onChange = () => setRoute((r) => currentRoute(r));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  const navigate = useCallback((state, { replace = false } = {}) => {
    const hash = formatHash(state);
    if (hash === window.location.hash) return;
    if (replace) {
      window.history.replaceState(null, '', hash);
      setRoute(parseHash(hash));
    } else {
      window.location.hash = hash;
    }
  }, []);
  return [route, navigate];
}

// GETs `path` now and every `intervalMs` (one request at a time) while mounted: { data, error,
// status, at, reload }. The last good document stays while a later poll fails (error says why). A new
// path starts empty, so a page never shows another filter's rows as its own.
export function usePolled(client, path, intervalMs) {
  const [state, setState] = useState({ path: null, data: null, error: null, status: 0, at: null });
  const wake = useRef(() => {});
  const interval = useRef(intervalMs);
  interval.current = intervalMs;
  useEffect(() => {
    if (!path) return undefined;
    let stopped = false;
    let running = false;
    let timer = null;
    setState((s) => (s.path === path ? s : { path, data: null, error: null, status: 0, at: null }));
    async function run() {
      if (running || stopped) return;
      running = true;
      clearTimeout(timer);
      const r = await client.request(path);
      running = false;
      if (stopped) return;
      setState((s) =>
        r.kind === 'ok'
          ? { path, data: r.body, error: null, status: r.status, at: Date.now() }
          : { ...s, path, data: s.path === path ? s.data : null, error: r.message, status: r.status },
      );
      timer = setTimeout(run, document.hidden ? Math.max(interval.current, HIDDEN_REFRESH_MS) : interval.current);
    }
    wake.current = run;
    run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [client, path]);
  const reload = useCallback(() => wake.current(), []);
  return { ...state, reload };
}
