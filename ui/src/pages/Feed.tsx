import { useState } from 'preact/hooks';
import type { EventKind } from '../api';
import { Empty, ProcessLink } from '../components';
import { clock, nanosToMs } from '../format';
import { describe } from '../live';
import { connected, eventTick, feed, href } from '../state';

const KINDS: EventKind[] = ['started', 'completed', 'failed', 'sla_breached', 'stuck', 'spec_violated', 'reopened'];

export function FeedPage() {
  void eventTick.value; // re-render as events arrive
  const [kinds, setKinds] = useState<EventKind[]>(['failed', 'sla_breached', 'stuck', 'spec_violated']);
  const toggle = (k: EventKind) => setKinds(kinds.includes(k) ? kinds.filter((x) => x !== k) : [...kinds, k]);
  const list = feed.list({ kinds }).slice(0, 200);
  return (
    <section>
      <header class="page-head">
        <h1>Live feed</h1>
        <span class={`conn ${connected.value ? 'up' : 'down'}`} role="status">{connected.value ? 'live' : connected.value === false ? 'reconnecting…' : 'connecting…'}</span>
      </header>
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
