import { useState } from 'preact/hooks';
import { api } from '../api';
import { Empty, ErrorBox, Loading, ProcessLink, useData } from '../components';
import { ago, nanosToMs } from '../format';
import { eventTick, href } from '../state';
import { waitingText } from './Search';

const THRESHOLDS = ['10s', '30s', '1m', '5m', '15m', '1h'];

export function TriagePage({ olderThan }: { olderThan: string }) {
  const [threshold, setThreshold] = useState(olderThan || '30s');
  const tick = eventTick.value;
  const { data, error, loading, reload } = useData(() => api.triage(threshold), [threshold, tick], 5000);
  const now = Date.now();
  const groups = [...(data?.groups ?? [])].sort((a, b) => nanosToMs(a.oldestStartUnixNano) - nanosToMs(b.oldestStartUnixNano));
  return (
    <section>
      <header class="page-head">
        <h1>Triage</h1>
        <label>
          Running longer than{' '}
          <select value={threshold} onChange={(e) => { const v = (e.target as HTMLSelectElement).value; setThreshold(v); location.hash = href('/triage', { older_than: v }); }}>
            {THRESHOLDS.map((t) => <option value={t}>{t}</option>)}
          </select>
        </label>
      </header>
      {error ? <ErrorBox error={error} retry={reload} /> : null}
      {loading && !data ? <Loading what="waiting processes" /> : null}
      {data && !groups.length ? <Empty><p><strong>Nothing to triage.</strong> No process has been running longer than {threshold}.</p></Empty> : null}
      {groups.length ? <p>{data!.processes} process{data!.processes === 1 ? '' : 'es'} running longer than {threshold}, grouped by where they wait, oldest first.</p> : null}
      {groups.map((g) => (
        <article class="group" data-testid="triage-group">
          <h2>{g.waitingFor ? waitingText(g.waitingFor) : 'nothing known to wait for'} <span class="muted">· {g.processes} process{g.processes === 1 ? '' : 'es'}</span></h2>
          <p class="small">
            Oldest started {ago(nanosToMs(g.oldestStartUnixNano), now)} ·{' '}
            {g.types.map((t) => (
              <span class="kv">
                <a href={href(`/type/${t.processType}`)}>{t.processType}</a> × {t.processes}
                {t.owner?.team ? ` (${t.owner.team}${t.owner.pager ? `, pager ${t.owner.pager}` : ''})` : ''}
                {t.owner?.runbook ? <> <a href={t.owner.runbook} target="_blank" rel="noreferrer">runbook</a></> : null}
              </span>
            ))}
          </p>
          <p class="small">Oldest: {g.oldest.map((id) => <ProcessLink id={id}>{id.slice(0, 12)}…</ProcessLink>)}</p>
        </article>
      ))}
    </section>
  );
}
