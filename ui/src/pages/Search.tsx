import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, type ProcessList } from '../api';
import { Empty, ErrorBox, Loading, ProcessLink, StateBadge } from '../components';
import { ago, durationNanos, nanosToMs } from '../format';
import { format, parse, toParams } from '../search';
import { href } from '../state';

const EXAMPLES = ['order.id=12345', 'type:checkout state:running', 'stuck', 'sla since:1h', 'service:payments min:2s', 'state:failed sort:duration'];

export function Search({ q }: { q: string }) {
  const [text, setText] = useState(q);
  const [result, setResult] = useState<ProcessList | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [more, setMore] = useState(false);
  const parsed = parse(q);
  useEffect(() => setText(q), [q]);

  useEffect(() => {
    setResult(null);
    setError(null);
    setLoading(false);
    if (parsed.errors.length) return;
    // Answers to an earlier query that arrive late are dropped, not shown under this one.
    let current = true;
    const { query } = parsed;
    if (query.id) {
      // A process id, or any trace id of a process, opens that process.
      api.process(query.id).then(
        (d) => { if (current) location.hash = href(`/process/${d.process.id}`); },
        (e) => {
          if (!current) return;
          if (e instanceof ApiError && e.status === 404) setResult({ processes: [] });
          else setError(e);
        },
      );
      return () => { current = false; };
    }
    setLoading(true);
    api.processes({ ...toParams(query, Date.now()), limit: '100' }).then(
      (r) => { if (current) { setResult(r); setLoading(false); } },
      (e) => { if (current) { setError(e); setLoading(false); } },
    );
    return () => { current = false; };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [q]);

  const loadMore = () => {
    if (!result?.nextCursor) return;
    setMore(true);
    api.processes({ ...toParams(parsed.query, Date.now()), limit: '100', cursor: result.nextCursor }).then(
      (r) => { setResult({ processes: [...result.processes, ...r.processes], nextCursor: r.nextCursor }); setMore(false); },
      (e) => { setError(e); setMore(false); },
    );
  };

  const submit = (e: Event) => {
    e.preventDefault();
    const normal = parse(text);
    location.hash = href('/search', { q: normal.errors.length ? text : format(normal.query) });
  };
  const now = Date.now();
  return (
    <section>
      <header class="page-head"><h1>Search</h1></header>
      <form class="search" onSubmit={submit} role="search">
        <label for="q" class="visually-hidden">Search processes</label>
        <input id="q" name="q" type="search" value={text} autoFocus
          placeholder="order.id=12345   type:checkout state:running   stuck   service:payments min:2s"
          onInput={(e) => setText((e.target as HTMLInputElement).value)} />
        <button type="submit">Search</button>
      </form>
      <p class="muted small">
        Try: {EXAMPLES.map((x, i) => <>{i ? ' · ' : ''}<a href={href('/search', { q: x })}>{x}</a></>)}
      </p>
      {parsed.errors.length ? (
        <div class="error" role="alert"><ul>{parsed.errors.map((e) => <li>{e}</li>)}</ul></div>
      ) : null}
      {error ? <ErrorBox error={error} /> : null}
      {loading ? <Loading what="processes" /> : null}
      {result && result.processes.length === 0 ? <Empty><p>No process matches <code>{q || 'everything'}</code>.</p></Empty> : null}
      {result && result.processes.length > 0 ? (
        <>
          <table class="grid" data-testid="results" data-q={q}>
            <thead>
              <tr>
                <th scope="col">Process</th><th scope="col">Type</th><th scope="col">State</th>
                <th scope="col">Keys</th><th scope="col" class="num">Started</th><th scope="col" class="num">Duration</th>
                <th scope="col" class="num">Spans</th><th scope="col">Waiting for</th>
              </tr>
            </thead>
            <tbody>
              {result.processes.map((p) => (
                <tr key={p.id}>
                  <td><ProcessLink id={p.id}>{p.id.slice(0, 12)}…</ProcessLink></td>
                  <td><a href={href(`/type/${p.processType}`)}>{p.processType}</a></td>
                  <td><StateBadge p={p} /></td>
                  <td class="keys">{Object.entries(p.keys).map(([k, v]) => <span class="kv">{k}={v}</span>)}</td>
                  <td class="num" title={new Date(nanosToMs(p.startTimeUnixNano)).toISOString()}>{ago(nanosToMs(p.startTimeUnixNano), now)}</td>
                  <td class="num">{durationNanos(p.durationNanos)}</td>
                  <td class="num">{p.spans}{p.errorSpans ? <span class="bad-text"> ({p.errorSpans} err)</span> : null}</td>
                  <td class="small">{p.waitingFor.map(waitingText).join('; ')}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {result.nextCursor ? <button onClick={loadMore} disabled={more}>{more ? 'Loading…' : 'More'}</button> : null}
        </>
      ) : null}
    </section>
  );
}

export function waitingText(w: import('../api').Waiting): string {
  switch (w.kind) {
    case 'message': return `${w.destination} → ${w.consumerGroup}`;
    case 'missing_parent': return `${w.count} missing parent span${w.count === 1 ? '' : 's'}`;
    case 'root': return 'the root span to end';
  }
}
