import { useState } from 'preact/hooks';
import { api, type EventKind } from '../api';
import { Empty, ErrorBox, ProcessLink, useData } from '../components';
import { clock, nanosToMs } from '../format';
import { describe } from '../live';
import { connected, eventTick, feed, href } from '../state';

const KINDS: EventKind[] = ['started', 'completed', 'failed', 'sla_breached', 'stuck', 'spec_violated', 'reopened'];

export function FeedPage() {
  void eventTick.value; // re-render as events arrive
  const [kinds, setKinds] = useState<EventKind[]>(['failed', 'sla_breached', 'stuck', 'spec_violated']);
  const toggle = (k: EventKind) => setKinds(kinds.includes(k) ? kinds.filter((x) => x !== k) : [...kinds, k]);
  const list = feed.list({ kinds }).slice(0, 200);
  const alerts = useData(() => api.alerts(50), [eventTick.value], 3000);
  return (
    <section>
      <header class="page-head">
        <h1>Live feed</h1>
        <span class={`conn ${connected.value ? 'up' : 'down'}`} role="status">{connected.value ? 'live' : connected.value === false ? 'reconnecting…' : 'connecting…'}</span>
      </header>
      <h2>Alerts</h2>
      {alerts.error ? <ErrorBox error={alerts.error} retry={alerts.reload} /> : null}
      {alerts.data && !alerts.data.alerts.length ? (
        <p class="muted">No alert has fired. Alert rules are set in the server's config (<code>[[alert]]</code>); the demo has two.</p>
      ) : null}
      {alerts.data?.alerts.length ? (
        <ol class="feed" data-testid="alerts">
          {alerts.data.alerts.map((a) => (
            <li class={a.status === 'firing' ? 'lvl-bad' : 'lvl-good'} key={a.seq}>
              <time>{clock(nanosToMs(a.endsAtUnixNano ?? a.startsAtUnixNano))}</time>{' '}
              <span class={`badge ${a.status === 'firing' ? 'bad' : 'state-completed'}`}>{a.status}</span>{' '}
              <strong>{a.rule}</strong> <a href={href(`/type/${a.processType}`)}>{a.processType}</a>{' '}
              {a.processId ? <ProcessLink id={a.processId}>{a.processId.slice(0, 8)}…</ProcessLink> : null} {a.summary}
            </li>
          ))}
        </ol>
      ) : null}
      <h2>Events</h2>
      <fieldset class="kinds">
        <legend>Show</legend>
        {KINDS.map((k) => <label><input type="checkbox" checked={kinds.includes(k)} onChange={() => toggle(k)} /> {k.replace('_', ' ')}</label>)}
      </fieldset>
      {!list.length ? <Empty><p>No {kinds.length ? 'such ' : ''}events since this page opened. Alerts and process events appear here as they happen.</p></Empty> : (
        <ol class="feed" data-testid="feed">
          {list.map((e) => {
            const d = describe(e);
            return (
              <li class={`lvl-${d.level}`} key={e.seq}>
                <time>{clock(nanosToMs(e.atUnixNano))}</time>{' '}
                <a href={href(`/type/${e.processType}`)}>{e.processType}</a>{' '}
                <ProcessLink id={e.processId}>{e.processId.slice(0, 8)}…</ProcessLink> {d.text}
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
}
