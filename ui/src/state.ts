// Application-wide live state: the event stream feeds the feed, the trends and a change
// counter pages watch to refresh what they show.

import { signal } from '@preact/signals';
import { followEvents, type ProcessEvent } from './api';
import { Feed, Trends } from './live';

export const connected = signal<boolean | null>(null);
/**
 * The number of events received, published at most once a second: pages that show live
 * numbers refetch when it changes, however fast events arrive.
 */
export const eventTick = signal(0);
let received = 0;
export const feed = new Feed(500);
export const trends = new Trends(10_000, 30);

let stop: (() => void) | null = null;

export function startLive(): void {
  if (stop) return;
  const timer = setInterval(() => {
    if (eventTick.value !== received) eventTick.value = received;
  }, 1000);
  const unfollow = followEvents(
    (event: ProcessEvent) => {
      feed.add(event);
      trends.add(event);
      received++;
    },
    (up) => {
      connected.value = up;
    },
  );
  stop = () => {
    clearInterval(timer);
    unfollow();
  };
}

/** The current hash route: path segments and query parameters. */
export interface Route {
  path: string[];
  params: URLSearchParams;
}

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?', 2);
  return {
    path: path.split('/').filter(Boolean).map(decodeURIComponent),
    params: new URLSearchParams(query ?? ''),
  };
}

export function href(path: string, params?: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v) q.set(k, v);
  const s = q.toString();
  return `#${path}${s ? `?${s}` : ''}`;
}
