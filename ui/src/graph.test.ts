import { describe, expect, it } from 'vitest';
import type { Graph } from './api';
import { elements } from './graph';

const q = (p95ms: number) => ({ p50Nanos: '1', p95Nanos: String(p95ms * 1_000_000), p99Nanos: '1' });
const graph: Graph = {
  calls: [{ caller: 'frontend', callee: 'checkout', calls: 10, errors: 1, perMinute: 2, durations: q(30) }],
  operations: [
    { service: 'frontend', operation: 'POST /checkout', count: 10, errors: 0, perMinute: 2, durations: q(40) },
    { service: 'checkout', operation: 'place', count: 10, errors: 1, perMinute: 2, durations: q(25) },
    { service: 'checkout', operation: 'publish', count: 10, errors: 0, perMinute: 2, durations: q(2) },
  ],
  channels: [{
    system: 'kafka', destination: 'orders', messages: 10,
    producers: [{ service: 'checkout', messages: 10 }],
    consumerGroups: [
      { group: 'payments', consumed: 10, waits: q(12) },
      { group: 'audit-group', consumed: 9, waits: q(50) },
    ],
  }],
};

describe('elements', () => {
  const els = elements(graph);
  const byId = new Map(els.map((e) => [e.data.id, e]));
  it('has a node per service and channel, and one per consumer group not named after a service', () => {
    expect(els.filter((e) => !e.data.source).map((e) => e.data.id).sort()).toEqual(
      ['ch:kafka/orders', 'grp:audit-group', 'grp:payments', 'svc:checkout', 'svc:frontend'],
    );
  });
  it('labels services with rate, slowest operation p95 and error share', () => {
    expect(byId.get('svc:checkout')!.data.label).toBe('checkout\n4.0/min · p95 ≤ 25.0 ms · 5.0% err');
    expect(byId.get('svc:checkout')!.classes).toBe('service warn');
    expect(byId.get('svc:frontend')!.data.label).toBe('frontend\n2.0/min · p95 ≤ 40.0 ms');
  });
  it('draws calls, produce and consume edges with their figures', () => {
    expect(byId.get('call:frontend>checkout')!.data).toMatchObject({ source: 'svc:frontend', target: 'svc:checkout', label: '2.0/min · p95 30.0 ms · 1 err' });
    expect(byId.get('prod:checkout>ch:kafka/orders')!.data.target).toBe('ch:kafka/orders');
    // A group named after no service gets its own node.
    expect(byId.get('cons:ch:kafka/orders>payments')!.data).toMatchObject({ target: 'grp:payments', label: '10 · wait p95 12.0 ms' });
  });
  it('draws a group named after a service into that service', () => {
    const named = elements({ ...graph, channels: [{ ...graph.channels[0], consumerGroups: [{ group: 'frontend', consumed: 1, waits: q(1) }] }] });
    expect(named.find((e) => e.data.id === 'cons:ch:kafka/orders>frontend')!.data.target).toBe('svc:frontend');
    expect(named.some((e) => e.data.id === 'grp:frontend')).toBe(false);
  });
});
