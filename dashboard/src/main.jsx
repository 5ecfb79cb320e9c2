// Entry point: mounts the dashboard into #app. ?refresh=SECONDS (0.5 to 60, default 2) sets how often
// the page polls the gateway.
import { render } from 'preact';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { App } from './app.jsx';
import { PoolClient } from './api.js';

function refreshMs() {
  const seconds = Number(new URLSearchParams(window.location.search).get('refresh'));
  if (!Number.isFinite(seconds) || seconds <= 0) return 2000;
  return Math.round(Math.min(60, Math.max(0.5, seconds)) * 1000);
}

render(<App client={new PoolClient()} refreshMs={refreshMs()} />, document.getElementById('app'));
