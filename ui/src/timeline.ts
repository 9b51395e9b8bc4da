// Lays out a process's spans as a waterfall: one row per span, in causal order across its
// traces (a consumer's trace goes under the message it consumed), with message hops from
// producer to consumer and the critical path marked.

import type { Segment, Span } from './api';
import { nanosToMs } from './format';

export interface Row {
  span: Span;
  depth: number;
  /** Start and end as fractions 0..1 of the process's time range. */
  x0: number;
  x1: number;
  critical: boolean;
  error: boolean;
}

export interface Hop {
  from: number; // row index of the producer
  to: number; // row index of the consumer
  destination: string;
  consumerGroup?: string;
  waitMs: number;
  critical: boolean;
}

export interface Layout {
  rows: Row[];
  hops: Hop[];
  startMs: number;
  endMs: number;
}

function attr(span: Span, key: string): string | undefined {
  const v = span.attributes.find((a) => a.key === key)?.value;
  return v?.stringValue ?? v?.intValue;
}

export function layout(spans: Span[], criticalPath: Segment[]): Layout {
  const byId = new Map<string, Span>();
  for (const s of spans) byId.set(s.spanId, s);
  const start = (s: Span) => nanosToMs(s.startTimeUnixNano);
  const end = (s: Span) => nanosToMs(s.endTimeUnixNano);

  // The causal parent of each span: its parent span, or for a trace's root that was started
  // by a message, the producer it links to.
  const parentOf = new Map<string, string>();
  for (const s of spans) {
    if (s.parentSpanId && byId.has(s.parentSpanId)) parentOf.set(s.spanId, s.parentSpanId);
    else {
      const link = s.links.find((l) => byId.has(l.spanId));
      if (link) parentOf.set(s.spanId, link.spanId);
    }
  }
  const children = new Map<string, Span[]>();
  const roots: Span[] = [];
  for (const s of spans) {
    const p = parentOf.get(s.spanId);
    if (p) {
      const list = children.get(p) ?? [];
      list.push(s);
      children.set(p, list);
    } else roots.push(s);
  }
  const byStart = (a: Span, b: Span) => start(a) - start(b) || a.spanId.localeCompare(b.spanId);
  roots.sort(byStart);

  const order: { span: Span; depth: number }[] = [];
  const seen = new Set<string>();
  const visit = (s: Span, depth: number) => {
    if (seen.has(s.spanId)) return;
    seen.add(s.spanId);
    order.push({ span: s, depth });
    for (const c of (children.get(s.spanId) ?? []).sort(byStart)) visit(c, depth + 1);
  };
  for (const r of roots) visit(r, 0);
  // A cycle (bad data) leaves spans unvisited: list them at the end rather than lose them.
  for (const s of [...spans].sort(byStart)) visit(s, 0);

  const starts = spans.map(start).filter(Number.isFinite);
  const ends = spans.map(end).filter(Number.isFinite);
  const startMs = starts.length ? Math.min(...starts) : 0;
  const endMs = Math.max(ends.length ? Math.max(...ends) : startMs, startMs + 1e-3);
  const width = endMs - startMs;

  const criticalSpans = new Set<string>();
  const criticalHops = new Set<string>();
  for (const seg of criticalPath) {
    if (seg.kind === 'operation') criticalSpans.add(seg.spanId);
    else criticalHops.add(`${seg.producerSpanId}>${seg.consumerSpanId}`);
  }

  const index = new Map<string, number>();
  const rows: Row[] = order.map(({ span, depth }, i) => {
    index.set(span.spanId, i);
    return {
      span,
      depth,
      x0: (start(span) - startMs) / width,
      x1: (end(span) - startMs) / width,
      critical: criticalSpans.has(span.spanId),
      error: span.status.code === 'error',
    };
  });

  // Message hops: a consumer span whose parent or link is a producer span.
  const hops: Hop[] = [];
  for (const consumer of spans) {
    if (consumer.kind !== 'consumer') continue;
    const sources = [consumer.parentSpanId, ...consumer.links.map((l) => l.spanId)];
    for (const id of sources) {
      const producer = id ? byId.get(id) : undefined;
      if (!producer || producer.kind !== 'producer') continue;
      const wait = criticalPath.find(
        (s) => s.kind === 'channel_wait' && s.producerSpanId === producer.spanId && s.consumerSpanId === consumer.spanId,
      );
      hops.push({
        from: index.get(producer.spanId)!,
        to: index.get(consumer.spanId)!,
        destination: attr(consumer, 'messaging.destination.name') ?? attr(producer, 'messaging.destination.name') ?? '',
        consumerGroup: attr(consumer, 'messaging.consumer.group.name') ?? attr(consumer, 'messaging.kafka.consumer.group'),
        waitMs: wait ? nanosToMs(wait.durationNanos) : Math.max(0, start(consumer) - start(producer)),
        critical: criticalHops.has(`${producer.spanId}>${consumer.spanId}`),
      });
      break;
    }
  }
  return { rows, hops, startMs, endMs };
}

/** A readable rendering of an attribute value. */
export function valueText(v: import('./api').AnyValue | undefined): string {
  if (!v) return '';
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return v.intValue;
  if (v.doubleValue !== undefined) return String(v.doubleValue);
  if (v.boolValue !== undefined) return String(v.boolValue);
  if (v.bytesValue !== undefined) return `base64:${v.bytesValue}`;
  if (v.arrayValue) return `[${v.arrayValue.values.map(valueText).join(', ')}]`;
  if (v.kvlistValue) return `{${v.kvlistValue.values.map((kv) => `${kv.key}: ${valueText(kv.value)}`).join(', ')}}`;
  return '';
}
