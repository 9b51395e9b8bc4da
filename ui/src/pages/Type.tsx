import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { api } from '../api';
import { Empty, ErrorBox, Loading, ProcessLink, StateBadge, useData } from '../components';
import { ago, count, duration, durationNanos, nanosToMs, percent, rate } from '../format';
import { eventTick, href } from '../state';
import { histogram, percentilesOverTime } from '../stats';
import { waitingText } from './Search';

export function TypePage({ name }: { name: string }) {
  const tick = eventTick.value;
  const summary = useData(() => api.processTypes(15), [name, tick], 5000);
  const recent = useData(() => api.processes({ type: name, limit: '1000' }), [name], 10_000);
  const failures = useData(() => api.processes({ type: name, state: 'failed', limit: '10' }), [name, tick]);
  const breaches = useData(() => api.processes({ type: name, sla_breached: 'true', limit: '10' }), [name, tick]);
  const triage = useData(() => api.triage('0s'), [name, tick], 5000);
  const specs = useData(() => api.specs(), [name]);
  const spec = specs.data?.specs.find((x) => x.name === name);
  const t = summary.data?.processTypes.find((x) => x.name === name);
  const now = Date.now();
  const finished = (recent.data?.processes ?? []).filter((p) => p.state !== 'running');
  const durations = finished.map((p) => nanosToMs(p.durationNanos));
  const points = finished.map((p) => ({ atMs: nanosToMs(p.startTimeUnixNano), durationMs: nanosToMs(p.durationNanos) }));
  const groups = (triage.data?.groups ?? [])
    .map((g) => ({ g, n: g.types.find((x) => x.processType === name)?.processes ?? 0 }))
    .filter((x) => x.n > 0);
  return (
    <section>
      <header class="page-head"><h1>{name}</h1></header>
      {summary.error ? <ErrorBox error={summary.error} retry={summary.reload} /> : null}
      {summary.loading && !summary.data ? <Loading what="the process type" /> : null}
      {summary.data && !t ? <Empty><p>No process of type <code>{name}</code> in the last 15 minutes.</p></Empty> : null}
      {t ? (
        <div class="cards">
          <div class="card"><div class="big">{count(t.inFlight)}</div>in flight</div>
          <div class="card"><div class="big">{count(t.completed)}</div>completed (15 min)</div>
          <div class="card"><div class={`big ${t.failed ? 'bad-text' : ''}`}>{count(t.failed)}</div>failed</div>
          <div class="card"><div class={`big ${t.stuck ? 'bad-text' : ''}`}>{count(t.stuck)}</div>stuck</div>
          <div class="card"><div class={`big ${t.slaBreached ? 'warn-text' : ''}`}>{count(t.slaBreached)}</div>SLA breaches</div>
          <div class="card"><div class="big">{percent(t.slaCompliance)}</div>SLA met</div>
          <div class="card"><div class="big">{rate(t.completedPerMinute)}</div>completion rate</div>
          <div class="card"><div class="big">{durationNanos(t.durations.p50Nanos)}</div>p50 · p95 {durationNanos(t.durations.p95Nanos)} · p99 {durationNanos(t.durations.p99Nanos)}</div>
          <div class="card owner">
            <strong>Owner</strong>
            {t.owner ? (
              <div>
                {t.owner.team ?? 'no team'}
                {t.owner.runbook ? <> · <a href={t.owner.runbook} target="_blank" rel="noreferrer">runbook</a></> : null}
                {t.owner.repo ? <> · <a href={t.owner.repo} target="_blank" rel="noreferrer">repo</a></> : null}
                {t.owner.pager ? <> · pager {t.owner.pager}</> : null}
              </div>
            ) : <div class="muted">none declared in the spec</div>}
          </div>
        </div>
      ) : null}
      <h2>Spec</h2>
      {spec ? (
        <div data-testid="spec">
          <p>
            Recognised by {spec.recognize}.{' '}
            {spec.slaNanos ? <>SLA <strong>{durationNanos(spec.slaNanos)}</strong>. </> : 'No SLA. '}
            {spec.stuckAfterNanos ? <>Stuck after {durationNanos(spec.stuckAfterNanos)} without progress. </> : null}
            {spec.forbidErrors ? 'Any error span is a violation. ' : null}
            {spec.maxRetries !== undefined ? `At most ${spec.maxRetries} retries of a step. ` : null}
            {spec.keys.length ? <>Business keys: {spec.keys.map((k) => <span class="kv">{k}</span>)}</> : null}
          </p>
          {spec.steps.length ? (
            <table class="grid">
              <thead><tr><th scope="col">Order</th><th scope="col">Service</th><th scope="col">Operation</th><th scope="col">Times</th><th scope="col">Notes</th></tr></thead>
              <tbody>
                {spec.steps.map((s) => (
                  <tr>
                    <td>{s.order ?? '—'}</td><td>{s.service}</td><td>{s.operation}</td>
                    <td>{s.min === 0 ? 'optional' : `at least ${s.min}`}{s.max !== undefined ? `, at most ${s.max}` : ''}</td>
                    <td>{[s.terminal ? 'ends the process' : '', s.critical ? 'an error fails the process' : ''].filter(Boolean).join('; ')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : <p class="muted">No steps declared.</p>}
        </div>
      ) : specs.data ? <p class="muted">No spec declares this type: it is judged by the server's defaults.</p> : null}
      <div class="two">
        <div>
          <h2>Duration distribution</h2>
          <p class="muted small">The newest {finished.length} finished processes.</p>
          {durations.length ? <Histogram values={durations} /> : <Empty><p>No finished process yet.</p></Empty>}
        </div>
        <div>
          <h2>Percentiles over time</h2>
          <p class="muted small">p50, p95 and p99 of duration per minute of start time.</p>
          {points.length ? <Percentiles points={points} /> : <Empty><p>No finished process yet.</p></Empty>}
        </div>
      </div>
      <h2>Stuck and waiting, by where they wait</h2>
      {groups.length ? (
        <table class="grid">
          <thead><tr><th scope="col">Waiting for</th><th scope="col" class="num">Processes</th><th scope="col">Oldest</th></tr></thead>
          <tbody>
            {groups.map(({ g, n }) => (
              <tr>
                <td>{g.waitingFor ? waitingText(g.waitingFor) : 'nothing known'}</td>
                <td class="num">{n}</td>
                <td>{g.oldest.slice(0, 3).map((id) => <ProcessLink id={id}>{id.slice(0, 8)}…</ProcessLink>)} <span class="muted small">since {ago(nanosToMs(g.oldestStartUnixNano), now)}</span></td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : <Empty><p>Nothing of this type is waiting.</p></Empty>}
      <div class="two">
        <div>
          <h2>Recent failures</h2>
          <MiniList list={failures.data?.processes ?? []} empty="No failures." now={now} />
          <a href={href('/search', { q: `type:${name} state:failed` })}>All failures →</a>
        </div>
        <div>
          <h2>Recent SLA breaches</h2>
          <MiniList list={breaches.data?.processes ?? []} empty="No SLA breaches." now={now} />
          <a href={href('/search', { q: `type:${name} sla` })}>All breaches →</a>
        </div>
      </div>
    </section>
  );
}

function MiniList({ list, empty, now }: { list: import('../api').Process[]; empty: string; now: number }) {
  if (!list.length) return <p class="muted">{empty}</p>;
  return (
    <ul class="mini">
      {list.map((p) => (
        <li>
          <ProcessLink id={p.id}>{Object.entries(p.keys).map(([k, v]) => `${k}=${v}`).join(' ') || `${p.id.slice(0, 12)}…`}</ProcessLink>{' '}
          <StateBadge p={p} /> <span class="muted small">{durationNanos(p.durationNanos)}, {ago(nanosToMs(p.startTimeUnixNano), now)}</span>
          {p.failure ? <div class="small bad-text">{p.failure}</div> : null}
        </li>
      ))}
    </ul>
  );
}

function usePlot(make: (el: HTMLDivElement, width: number) => uPlot, deps: unknown[]) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!ref.current) return;
    const width = Math.max(280, ref.current.clientWidth || 480);
    const plot = make(ref.current, width);
    return () => plot.destroy();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return ref;
}

function Histogram({ values }: { values: number[] }) {
  const { edges, counts } = histogram(values, 24);
  // Bins are log-spaced; the x axis is the bin index, labelled with each bin's middle.
  const mids = edges.slice(0, -1).map((e, i) => Math.sqrt(e * edges[i + 1]));
  const ref = usePlot((el, width) => new uPlot({
    width, height: 200,
    scales: { x: { time: false, range: [-0.5, counts.length - 0.5] } },
    axes: [
      { values: (_u, ticks) => ticks.map((i) => (Number.isInteger(i) && mids[i] !== undefined ? duration(mids[i]) : '')), stroke: 'currentColor' },
      { stroke: 'currentColor' },
    ],
    series: [{}, { label: 'processes', fill: 'rgba(107,138,253,0.5)', stroke: '#6b8afd', paths: uPlot.paths.bars!({ size: [0.9, 60] }), points: { show: false } }],
    legend: { show: false },
  }, [counts.map((_, i) => i), counts], el), [values.length, values[0], values[values.length - 1]]);
  return <div ref={ref} class="chart" role="img" aria-label="Histogram of process durations" data-testid="histogram" />;
}

function Percentiles({ points }: { points: { atMs: number; durationMs: number }[] }) {
  const r = percentilesOverTime(points, 60_000);
  const gap = (v: number[]) => v.map((x) => (Number.isFinite(x) ? x : null));
  const xs = r.x.map((x) => x / 1000);
  // One minute alone would be drawn across years: show a quarter hour around it.
  const range: uPlot.Range.MinMax | undefined = xs.length === 1 ? [xs[0] - 450, xs[0] + 450] : undefined;
  const ref = usePlot((el, width) => new uPlot({
    width, height: 200,
    scales: range ? { x: { range } } : {},
    axes: [{ stroke: 'currentColor' }, { values: (_u, ticks) => ticks.map((v) => duration(v)), stroke: 'currentColor', size: 70 }],
    series: [
      {},
      { label: 'p50', stroke: '#2e9e5b', width: 1.5 },
      { label: 'p95', stroke: '#d49b1b', width: 1.5 },
      { label: 'p99', stroke: '#d64545', width: 1.5 },
    ],
  }, [xs, gap(r.p50), gap(r.p95), gap(r.p99)], el), [points.length, points[0]?.atMs]);
  return <div ref={ref} class="chart" role="img" aria-label="Duration percentiles over time" data-testid="percentiles" />;
}
