// Live state kept from the event stream: per process type, counts of events in time buckets
// (the overview's trend charts), and the feed of recent events.

import type { EventKind, ProcessEvent } from './api';
import { nanosToMs } from './format';

export const TREND_KINDS: EventKind[] = ['started', 'completed', 'failed', 'sla_breached', 'stuck'];

/** Counts of events per kind in fixed buckets over a sliding window. */
export class Trend {
  /** Bucket start (ms) → counts by kind. */
  private buckets = new Map<number, Partial<Record<EventKind, number>>>();

  constructor(readonly bucketMs: number, readonly buckets_: number) {}

  add(kind: EventKind, atMs: number): void {
    const b = Math.floor(atMs / this.bucketMs) * this.bucketMs;
    const counts = this.buckets.get(b) ?? {};
    counts[kind] = (counts[kind] ?? 0) + 1;
    this.buckets.set(b, counts);
  }

  /** The window ending at `nowMs`: bucket starts and, per kind, a count per bucket. */
  series(nowMs: number): { x: number[]; counts: Record<EventKind, number[]> } {
    const last = Math.floor(nowMs / this.bucketMs) * this.bucketMs;
    const first = last - (this.buckets_ - 1) * this.bucketMs;
    for (const b of this.buckets.keys()) if (b < first) this.buckets.delete(b);
    const x: number[] = [];
    const counts = {} as Record<EventKind, number[]>;
    for (const kind of TREND_KINDS) counts[kind] = [];
    for (let b = first; b <= last; b += this.bucketMs) {
      x.push(b);
      const c = this.buckets.get(b) ?? {};
      for (const kind of TREND_KINDS) counts[kind].push(c[kind] ?? 0);
    }
    return { x, counts };
  }
}

/** Trends per process type, fed by events. */
export class Trends {
  private byType = new Map<string, Trend>();

  constructor(readonly bucketMs = 10_000, readonly buckets = 30) {}

  add(event: ProcessEvent): void {
    if (!TREND_KINDS.includes(event.kind)) return;
    let t = this.byType.get(event.processType);
    if (!t) {
      t = new Trend(this.bucketMs, this.buckets);
      this.byType.set(event.processType, t);
    }
    t.add(event.kind, nanosToMs(event.atUnixNano));
  }

  of(type: string): Trend | undefined {
    return this.byType.get(type);
  }
}

/** The most recent events, newest first, at most `capacity`. */
export class Feed {
  private items: ProcessEvent[] = [];

  constructor(readonly capacity = 500) {}

  add(event: ProcessEvent): void {
    // Resumed streams may repeat an event: keep each seq once.
    if (this.items.some((e) => e.seq === event.seq)) return;
    this.items.unshift(event);
    this.items.sort((a, b) => b.seq - a.seq);
    if (this.items.length > this.capacity) this.items.length = this.capacity;
  }

  list(filter?: { kinds?: EventKind[]; type?: string }): ProcessEvent[] {
    return this.items.filter(
      (e) => (!filter?.kinds?.length || filter.kinds.includes(e.kind)) && (!filter?.type || e.processType === filter.type),
    );
  }
}

/** How an event reads in the feed, and how serious it is. */
export function describe(event: ProcessEvent): { text: string; level: 'info' | 'good' | 'warn' | 'bad' } {
  switch (event.kind) {
    case 'started': return { text: 'started', level: 'info' };
    case 'completed': return { text: 'completed', level: 'good' };
    case 'failed': return { text: event.detail ? `failed: ${event.detail}` : 'failed', level: 'bad' };
    case 'sla_breached': return { text: 'breached its SLA', level: 'warn' };
    case 'stuck': return { text: event.detail ? `stuck: ${event.detail}` : 'stuck', level: 'bad' };
    case 'spec_violated': return { text: event.detail ? `spec violated: ${event.detail}` : 'spec violated', level: 'warn' };
    case 'reopened': return { text: 'reopened by a late span', level: 'info' };
  }
}
