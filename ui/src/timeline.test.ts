import { describe, expect, it } from 'vitest';
import type { Segment, Span } from './api';
import { layout, valueText } from './timeline';

function span(p: Partial<Span> & { spanId: string; start: number; end: number }): Span {
  return {
    traceId: p.traceId ?? 't1',
    spanId: p.spanId,
    parentSpanId: p.parentSpanId,
    name: p.name ?? p.spanId,
    kind: p.kind ?? 'internal',
    serviceName: p.serviceName ?? 'svc',
    startTimeUnixNano: String(p.start * 1_000_000),
    endTimeUnixNano: String(p.end * 1_000_000),
    durationNanos: String((p.end - p.start) * 1_000_000),
    attributes: p.attributes ?? [],
    events: [],
    links: p.links ?? [],
    status: p.status ?? { code: 'unset' },
  };
}

// A checkout: root → publish to "orders"; a consumer in a new trace linked to the publish.
const spans: Span[] = [
  span({ spanId: 'consume', traceId: 't2', kind: 'consumer', start: 40, end: 60, links: [{ traceId: 't1', spanId: 'publish', attributes: [] }],
    attributes: [{ key: 'messaging.destination.name', value: { stringValue: 'orders' } }, { key: 'messaging.consumer.group.name', value: { stringValue: 'payments' } }] }),
  span({ spanId: 'root', kind: 'server', start: 0, end: 20 }),
  span({ spanId: 'charge', traceId: 't2', parentSpanId: 'consume', start: 45, end: 100, status: { code: 'error' } }),
  span({ spanId: 'publish', parentSpanId: 'root', kind: 'producer', start: 10, end: 12 }),
];
const critical: Segment[] = [
  { kind: 'operation', traceId: 't1', spanId: 'root', service: 'svc', name: 'root', startTimeUnixNano: '0', endTimeUnixNano: '10000000', durationNanos: '10000000' },
  { kind: 'channel_wait', system: 'kafka', destination: 'orders', consumerGroup: 'payments', producerSpanId: 'publish', consumerSpanId: 'consume',
    startTimeUnixNano: '12000000', endTimeUnixNano: '40000000', durationNanos: '28000000' },
];

describe('layout', () => {
  const l = layout(spans, critical);
  it('orders spans causally across traces, a consumer under the message it consumed', () => {
    expect(l.rows.map((r) => [r.span.spanId, r.depth])).toEqual([
      ['root', 0], ['publish', 1], ['consume', 2], ['charge', 3],
    ]);
  });
  it('places spans on the process time range', () => {
    expect(l.startMs).toBe(0);
    expect(l.endMs).toBe(100);
    expect(l.rows[2]).toMatchObject({ x0: 0.4, x1: 0.6 });
  });
  it('draws the message hop with its channel, group and wait, on the critical path', () => {
    expect(l.hops).toEqual([{ from: 1, to: 2, destination: 'orders', consumerGroup: 'payments', waitMs: 28, critical: true }]);
  });
  it('marks critical and failed spans', () => {
    expect(l.rows.filter((r) => r.critical).map((r) => r.span.spanId)).toEqual(['root']);
    expect(l.rows.filter((r) => r.error).map((r) => r.span.spanId)).toEqual(['charge']);
  });
  it('keeps every span even when parents form a cycle', () => {
    const cyclic = [span({ spanId: 'a', parentSpanId: 'b', start: 0, end: 1 }), span({ spanId: 'b', parentSpanId: 'a', start: 1, end: 2 })];
    expect(layout(cyclic, []).rows.map((r) => r.span.spanId).sort()).toEqual(['a', 'b']);
  });
});

describe('valueText', () => {
  it('renders every value kind', () => {
    expect(valueText({ intValue: '3' })).toBe('3');
    expect(valueText({ boolValue: false })).toBe('false');
    expect(valueText({ arrayValue: { values: [{ stringValue: 'a' }, { doubleValue: 1.5 }] } })).toBe('[a, 1.5]');
    expect(valueText({ kvlistValue: { values: [{ key: 'k', value: { stringValue: 'v' } }] } })).toBe('{k: v}');
  });
});
