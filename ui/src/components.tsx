// Small shared pieces: state badges, loading and error states, a sparkline, data loading.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { ApiError, setApiToken, type Process } from './api';
import { href } from './state';

export function StateBadge({ p }: { p: Pick<Process, 'state' | 'stuck' | 'slaBreached' | 'spec'> }) {
  return (
    <span class="badges">
      <span class={`badge state-${p.state}`}>{p.state}</span>
      {p.stuck && <span class="badge bad">stuck</span>}
      {p.slaBreached && <span class="badge warn">SLA breached</span>}
      {p.spec && !p.spec.passed && <span class="badge warn">spec violated</span>}
    </span>
  );
}

export function Loading({ what }: { what: string }) {
  return <p class="muted" role="status">Loading {what}…</p>;
}

export function ErrorBox({ error, retry }: { error: unknown; retry?: () => void }) {
  const [token, setToken] = useState('');
  if (error instanceof ApiError && error.status === 401) {
    return (
      <div class="error" role="alert">
        <p><strong>This server asks for an API token.</strong> Enter it to continue; it is kept in this browser only.</p>
        <form onSubmit={(e) => { e.preventDefault(); setApiToken(token); location.reload(); }}>
          <label>API token <input type="password" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} /></label>{' '}
          <button type="submit">Use token</button>
        </form>
      </div>
    );
  }
  const down = error instanceof ApiError && error.unreachable;
  return (
    <div class="error" role="alert">
      <p>
        <strong>{down ? 'The Threadline server cannot be reached.' : 'The server answered with an error.'}</strong>{' '}
        {down ? 'Is it running? This page retries on its own.' : String((error as Error)?.message ?? error)}
      </p>
      {retry && <button onClick={retry}>Try again</button>}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

/** Loads with `load` now, again whenever `deps` change, and every `everyMs` if given. */
export function useData<T>(load: () => Promise<T>, deps: unknown[], everyMs?: number) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    const run = () =>
      load().then(
        (d) => { if (live) { setData(d); setError(null); setLoading(false); } },
        (e) => { if (live) { setError(e); setLoading(false); } },
      );
    void run();
    const timer = everyMs ? setInterval(run, everyMs) : undefined;
    return () => { live = false; if (timer) clearInterval(timer); };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, n]);
  return { data, error, loading, reload: () => setN((x) => x + 1) };
}

/** A small trend chart (uPlot) of one or more series over time (x in ms). */
export function Sparkline({ x, series, height = 48, width = 220, label }: {
  x: number[];
  series: { name: string; values: number[]; color: string }[];
  height?: number;
  width?: number;
  label: string;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!ref.current) return;
    const opts: uPlot.Options = {
      width, height,
      legend: { show: false },
      cursor: { show: false },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: false } },
      series: [{}, ...series.map((s) => ({ label: s.name, stroke: s.color, width: 1.5, points: { show: false } }))],
    };
    plot.current = new uPlot(opts, [x.map((v) => v / 1000), ...series.map((s) => s.values)], ref.current);
    return () => { plot.current?.destroy(); plot.current = null; };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [series.length, width, height]);
  useEffect(() => {
    plot.current?.setData([x.map((v) => v / 1000), ...series.map((s) => s.values)]);
  }, [x, series]);
  return <div class="spark" ref={ref} role="img" aria-label={label} />;
}

export function ProcessLink({ id, children }: { id: string; children?: ComponentChildren }) {
  return <a href={href(`/process/${id}`)} class="mono">{children ?? id}</a>;
}
