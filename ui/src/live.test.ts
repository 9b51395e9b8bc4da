import { describe, expect, it } from 'vitest';
import type { ProcessEvent } from './api';
import { Feed, Trends, describe as describeEvent } from './live';

const ev = (seq: number, kind: ProcessEvent['kind'], atMs: number, processType = 'checkout'): ProcessEvent => ({
  seq, kind, processId: `p${seq}`, processType, atUnixNano: String(atMs * 1_000_000),
});

describe('Trends', () => {
  it('counts events per type and kind in buckets over a sliding window', () => {
    const t = new Trends(10_000, 3);
    t.add(ev(1, 'started', 1_000));
    t.add(ev(2, 'started', 12_000));
    t.add(ev(3, 'completed', 15_000));
    t.add(ev(4, 'failed', 25_000));
    t.add(ev(5, 'started', 25_000, 'refund'));
    const s = t.of('checkout')!.series(29_999);
    expect(s.x).toEqual([0, 10_000, 20_000]);
    expect(s.counts.started).toEqual([1, 1, 0]);
    expect(s.counts.completed).toEqual([0, 1, 0]);
    expect(s.counts.failed).toEqual([0, 0, 1]);
    // The window slides: the oldest bucket drops out.
    expect(t.of('checkout')!.series(30_000).counts.started).toEqual([1, 0, 0]);
    expect(t.of('refund')!.series(29_999).counts.started).toEqual([0, 0, 1]);
    expect(t.of('inventory-sync')).toBeUndefined();
  });
});

describe('Feed', () => {
  it('keeps the newest events first, each once, up to its capacity', () => {
    const f = new Feed(3);
    for (const e of [ev(1, 'started', 0), ev(2, 'completed', 0), ev(2, 'completed', 0), ev(3, 'stuck', 0), ev(4, 'failed', 0)]) f.add(e);
    expect(f.list().map((e) => e.seq)).toEqual([4, 3, 2]);
    expect(f.list({ kinds: ['stuck', 'failed'] }).map((e) => e.seq)).toEqual([4, 3]);
  });
  it('describes events by seriousness', () => {
    expect(describeEvent({ ...ev(1, 'stuck', 0), detail: 'waiting at orders/payments' })).toEqual({ text: 'stuck: waiting at orders/payments', level: 'bad' });
    expect(describeEvent(ev(2, 'completed', 0)).level).toBe('good');
  });
});
