import { useState } from 'preact/hooks';
import { api } from '../api';
import { Empty, ErrorBox, Loading, Sparkline, useData } from '../components';
import { count, durationNanos, percent, rate } from '../format';
import { eventTick, href, trends } from '../state';

const WINDOWS = [1, 5, 15, 60];

export function Overview() {
  const [windowMinutes, setWindow] = useState(5);
  // Refetch when events arrive (the tick changes at most once a second) and every 5 s.
  const tick = eventTick.value;
  const { data, error, loading, reload } = useData(() => api.processTypes(windowMinutes), [windowMinutes, tick], 5000);
  const now = Date.now();
  return (
    <section>
      <header class="page-head">
        <h1>Processes</h1>
        <label>
          Window{' '}
          <select value={windowMinutes} onChange={(e) => setWindow(Number((e.target as HTMLSelectElement).value))}>
            {WINDOWS.map((w) => <option value={w}>{w} min</option>)}
          </select>
        </label>
      </header>
      {error ? <ErrorBox error={error} retry={reload} /> : null}
      {loading && !data ? <Loading what="process types" /> : null}
      {data && data.processTypes.length === 0 ? (
        <Empty>
          <p><strong>No processes yet.</strong> Threadline shows a process as soon as its first span arrives.</p>
          <p>Send OTLP to this server (gRPC on :4317, HTTP on :4318), or run <code>threadline demo</code> to see a simulated shop.</p>
        </Empty>
      ) : null}
      {data && data.processTypes.length > 0 ? (
        <table class="grid" data-testid="overview-table">
          <thead>
            <tr>
              <th scope="col">Type</th>
              <th scope="col" class="num">In flight</th>
              <th scope="col" class="num">Completed</th>
              <th scope="col" class="num">Failed</th>
              <th scope="col" class="num">Stuck</th>
              <th scope="col" class="num">SLA breaches</th>
              <th scope="col" class="num">Rate</th>
              <th scope="col" class="num">p50</th>
              <th scope="col" class="num">p95</th>
              <th scope="col" class="num">p99</th>
              <th scope="col" class="num">SLA met</th>
              <th scope="col">Last 5 minutes</th>
            </tr>
          </thead>
          <tbody>
            {data.processTypes.map((t) => {
              const s = trends.of(t.name)?.series(now);
              return (
                <tr key={t.name} data-type={t.name}>
                  <th scope="row"><a href={href(`/type/${t.name}`)}>{t.name}</a>{t.owner?.team ? <div class="muted small">{t.owner.team}</div> : null}</th>
                  <td class="num" data-field="inFlight">{count(t.inFlight)}</td>
                  <td class="num" data-field="completed">{count(t.completed)}</td>
                  <td class={`num ${t.failed ? 'bad-text' : ''}`}><a href={href('/search', { q: `type:${t.name} state:failed` })}>{count(t.failed)}</a></td>
                  <td class={`num ${t.stuck ? 'bad-text' : ''}`}><a href={href('/search', { q: `type:${t.name} stuck` })}>{count(t.stuck)}</a></td>
                  <td class={`num ${t.slaBreached ? 'warn-text' : ''}`}><a href={href('/search', { q: `type:${t.name} sla` })}>{count(t.slaBreached)}</a></td>
                  <td class="num">{rate(t.completedPerMinute)}</td>
                  <td class="num">{durationNanos(t.durations.p50Nanos)}</td>
                  <td class="num">{durationNanos(t.durations.p95Nanos)}</td>
                  <td class="num">{durationNanos(t.durations.p99Nanos)}</td>
                  <td class="num">{percent(t.slaCompliance)}</td>
                  <td>
                    {s ? (
                      <Sparkline
                        label={`${t.name}: started, completed and failed per 10 seconds`}
                        x={s.x}
                        series={[
                          { name: 'started', values: s.counts.started, color: '#6b8afd' },
                          { name: 'completed', values: s.counts.completed, color: '#2e9e5b' },
                          { name: 'failed', values: s.counts.failed, color: '#d64545' },
                        ]}
                      />
                    ) : <span class="muted small">waiting for events</span>}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
