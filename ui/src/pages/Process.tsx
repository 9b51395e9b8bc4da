import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, type Span } from '../api';
import { ErrorBox, Loading, StateBadge, useData } from '../components';
import { clock, duration, durationNanos, nanosToMs } from '../format';
import { href } from '../state';
import { layout, valueText, type Layout } from '../timeline';
import { waitingText } from './Search';

const ROW = 26;
const LABEL = 300;

export function ProcessPage({ id }: { id: string }) {
  const { data, error, loading, reload } = useData(() => api.process(id), [id], 5000);
  const [selected, setSelected] = useState<string | null>(null);
  const l = useMemo(() => (data ? layout(data.timeline, data.criticalPath) : null), [data]);
  if (error && !data) return <ErrorBox error={error} retry={reload} />;
  if (loading || !data || !l) return <Loading what="the process" />;
  const p = data.process;
  const span = data.timeline.find((s) => s.spanId === selected) ?? null;
  const waits = data.criticalPath.filter((s) => s.kind === 'channel_wait');
  // The path's segments nest (a server span and the client span around it): its length is
  // from the first start to the last end.
  const critical = data.criticalPath.length
    ? Math.max(...data.criticalPath.map((s) => nanosToMs(s.endTimeUnixNano))) -
      Math.min(...data.criticalPath.map((s) => nanosToMs(s.startTimeUnixNano)))
    : 0;
  return (
    <section>
      <header class="page-head">
        <h1>
          <a href={href(`/type/${p.processType}`)}>{p.processType}</a> <span class="mono small">{p.id}</span>
        </h1>
        <StateBadge p={p} />
      </header>
      {error ? <ErrorBox error={error} retry={reload} /> : null}
      <div class="facts">
        <dl>
          <dt>Started</dt><dd>{new Date(nanosToMs(p.startTimeUnixNano)).toLocaleString()}</dd>
          <dt>Duration</dt><dd>{durationNanos(p.durationNanos)}{p.state === 'running' ? ' so far' : ''}</dd>
          <dt>Spans</dt><dd>{p.spans}{p.errorSpans ? <span class="bad-text"> ({p.errorSpans} with errors)</span> : null}</dd>
          <dt>Business keys</dt>
          <dd>{Object.entries(p.keys).map(([k, v]) => <a class="kv" href={href('/search', { q: `${k}=${v}` })}>{k}={v}</a>)}</dd>
          <dt>Trace ids</dt><dd>{p.traceIds.map((t) => <div class="mono small" data-testid="trace-id">{t}</div>)}</dd>
        </dl>
        <dl>
          <dt>Waiting for</dt>
          <dd data-testid="waiting">{p.waitingFor.length ? p.waitingFor.map((w) => <div>{waitingText(w)}{w.kind === 'message' ? <span class="muted"> since {clock(nanosToMs(w.sinceUnixNano))}</span> : null}</div>) : <span class="muted">nothing</span>}</dd>
          {p.failure ? <><dt>Failure</dt><dd class="bad-text">{p.failure}</dd></> : null}
          <dt>Spec check</dt>
          <dd data-testid="spec">
            {!p.spec ? <span class="muted">no spec for this type</span> : p.spec.passed ? <span class="good-text">passed</span> : (
              <ul class="violations">{p.spec.violations.map((v) => <li class="warn-text">{v}</li>)}</ul>
            )}
          </dd>
          <dt>Owner</dt>
          <dd>
            {p.owner ? (
              <>
                {p.owner.team ? <span>{p.owner.team}</span> : null}
                {p.owner.runbook ? <> · <a href={p.owner.runbook} target="_blank" rel="noreferrer">runbook</a></> : null}
                {p.owner.repo ? <> · <a href={p.owner.repo} target="_blank" rel="noreferrer">repo</a></> : null}
                {p.owner.pager ? <> · pager {p.owner.pager}</> : null}
              </>
            ) : <span class="muted">none declared</span>}
          </dd>
          <dt>Critical path</dt>
          <dd>{duration(critical)} in {data.criticalPath.length} segments{waits.length ? `, ${waits.length} channel wait${waits.length > 1 ? 's' : ''}` : ''}</dd>
        </dl>
      </div>
      <h2>Timeline</h2>
      <p class="muted small legend">
        <span class="swatch crit" /> critical path <span class="swatch err" /> error <span class="arrow-key">→</span> message hop (channel wait shown) · click a span for details
      </p>
      <Waterfall l={l} selected={selected} onSelect={setSelected} />
      {span ? <SpanDetails span={span} onClose={() => setSelected(null)} /> : null}
    </section>
  );
}

function Waterfall({ l, selected, onSelect }: { l: Layout; selected: string | null; onSelect: (id: string) => void }) {
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(800);
  useEffect(() => {
    if (!box.current) return;
    const ro = new ResizeObserver((entries) => setWidth(Math.max(200, entries[0].contentRect.width - LABEL)));
    ro.observe(box.current);
    return () => ro.disconnect();
  }, []);
  const total = l.endMs - l.startMs;
  const px = (f: number) => LABEL + f * width;
  return (
    <div class="waterfall" ref={box} style={{ height: `${l.rows.length * ROW + 24}px` }} data-testid="waterfall">
      <div class="axis" style={{ left: `${LABEL}px`, width: `${width}px` }}>
        {[0, 0.25, 0.5, 0.75, 1].map((f) => <span style={{ left: `${f * 100}%` }}>{duration(total * f)}</span>)}
      </div>
      {l.rows.map((r, i) => (
        <button
          type="button"
          class={`row ${r.critical ? 'critical' : ''} ${r.error ? 'error' : ''} ${selected === r.span.spanId ? 'selected' : ''}`}
          style={{ top: `${24 + i * ROW}px`, height: `${ROW}px` }}
          onClick={() => onSelect(r.span.spanId)}
          data-span={r.span.spanId}
          data-critical={r.critical ? 'true' : undefined}
          aria-label={`${r.span.serviceName} ${r.span.name}, ${durationNanos(r.span.durationNanos)}${r.critical ? ', on the critical path' : ''}`}
        >
          <span class="label" style={{ width: `${LABEL - 8}px`, paddingLeft: `${4 + r.depth * 12}px` }}>
            <span class="svc">{r.span.serviceName}</span> {r.span.name}
          </span>
          <span class={`bar kind-${r.span.kind}`} style={{ left: `${px(r.x0)}px`, width: `${Math.max(2, (r.x1 - r.x0) * width)}px` }} />
          <span class="dur" style={{ left: `${px(r.x1) + 4}px` }}>{durationNanos(r.span.durationNanos)}</span>
        </button>
      ))}
      <svg class="hops" width={LABEL + width} height={l.rows.length * ROW + 24} aria-hidden="true">
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" class="arrowhead" />
          </marker>
        </defs>
        {l.hops.map((h) => {
          const from = l.rows[h.from];
          const to = l.rows[h.to];
          const x1 = px(from.x1);
          const y1 = 24 + h.from * ROW + ROW / 2;
          const x2 = px(to.x0);
          const y2 = 24 + h.to * ROW + ROW / 2;
          const mid = (x1 + x2) / 2;
          return (
            <g class={`hop ${h.critical ? 'critical' : ''}`} data-testid="hop">
              <path d={`M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 1},${y2}`} marker-end="url(#arrow)" />
              <text x={Math.max(x1, x2) + 6} y={(y1 + y2) / 2}>{h.destination}{h.consumerGroup ? ` → ${h.consumerGroup}` : ''} · waited {duration(h.waitMs)}</text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}

function SpanDetails({ span, onClose }: { span: Span; onClose: () => void }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => ref.current?.focus(), [span.spanId]);
  return (
    <aside class="details" ref={ref} tabIndex={-1} aria-label="Span details" data-testid="span-details"
      onKeyDown={(e) => { if (e.key === 'Escape') onClose(); }}>
      <header>
        <h3><span class="svc">{span.serviceName}</span> {span.name}</h3>
        <button onClick={onClose} aria-label="Close span details">×</button>
      </header>
      <dl>
        <dt>Kind</dt><dd>{span.kind}</dd>
        <dt>Status</dt><dd class={span.status.code === 'error' ? 'bad-text' : ''}>{span.status.code}{span.status.message ? `: ${span.status.message}` : ''}</dd>
        <dt>Duration</dt><dd>{durationNanos(span.durationNanos)} (from {clock(nanosToMs(span.startTimeUnixNano))})</dd>
        <dt>Trace id</dt><dd class="mono">{span.traceId}</dd>
        <dt>Span id</dt><dd class="mono">{span.spanId}{span.parentSpanId ? <span class="muted"> (parent {span.parentSpanId})</span> : null}</dd>
      </dl>
      <h4>Attributes</h4>
      <table class="attrs"><tbody>{span.attributes.map((a) => <tr><th scope="row">{a.key}</th><td>{valueText(a.value)}</td></tr>)}</tbody></table>
      {span.events.length ? (
        <>
          <h4>Events</h4>
          <ul>{span.events.map((e) => <li><strong>{e.name}</strong> at {clock(nanosToMs(e.timeUnixNano))} {e.attributes.map((a) => <span class="kv">{a.key}={valueText(a.value)}</span>)}</li>)}</ul>
        </>
      ) : null}
      {span.links.length ? (
        <>
          <h4>Links</h4>
          <ul>{span.links.map((k) => <li class="mono small"><a href={href('/search', { q: k.traceId })}>{k.traceId}</a> / {k.spanId}</li>)}</ul>
        </>
      ) : null}
    </aside>
  );
}
