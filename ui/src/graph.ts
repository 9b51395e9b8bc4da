// The system map's elements from the API's graph: services and channels as nodes; calls,
// produce and consume as edges, with rates, errors and latencies as labels.

import type { ElementDefinition } from 'cytoscape';
import type { Graph } from './api';
import { duration, durationNanos, nanosToMs, rate } from './format';

/** The graph's elements: services and channels as nodes; calls, produce and consume as edges. */
export function elements(g: Graph): ElementDefinition[] {
  // Per service: spans, errors, rate, and the p95 of its slowest operation (quantiles of
  // different operations cannot be added up).
  type Svc = { count: number; errors: number; perMinute: number; slowestP95: number };
  const fresh = (): Svc => ({ count: 0, errors: 0, perMinute: 0, slowestP95: NaN });
  const services = new Map<string, Svc>();
  for (const op of g.operations) {
    const s = services.get(op.service) ?? fresh();
    s.count += op.count;
    s.errors += op.errors;
    s.perMinute += op.perMinute;
    const p95 = nanosToMs(op.durations.p95Nanos);
    if (Number.isFinite(p95) && !(p95 <= s.slowestP95)) s.slowestP95 = p95;
    services.set(op.service, s);
  }
  for (const c of g.calls) for (const name of [c.caller, c.callee]) if (!services.has(name)) services.set(name, fresh());
  for (const ch of g.channels) for (const p of ch.producers) if (!services.has(p.service)) services.set(p.service, fresh());
  const out: ElementDefinition[] = [];
  for (const [name, s] of services) {
    const errorRate = s.count ? s.errors / s.count : 0;
    out.push({
      data: {
        id: `svc:${name}`, kind: 'service', name,
        label: `${name}\n${rate(s.perMinute)}${Number.isFinite(s.slowestP95) ? ` · p95 ≤ ${duration(s.slowestP95)}` : ''}${s.errors ? ` · ${(errorRate * 100).toFixed(1)}% err` : ''}`,
      },
      classes: errorRate > 0.05 ? 'service bad' : errorRate > 0 ? 'service warn' : 'service',
    });
  }
  for (const c of g.calls) {
    out.push({
      data: { id: `call:${c.caller}>${c.callee}`, source: `svc:${c.caller}`, target: `svc:${c.callee}`,
        label: `${rate(c.perMinute)} · p95 ${durationNanos(c.durations.p95Nanos)}${c.errors ? ` · ${c.errors} err` : ''}` },
      classes: c.errors ? 'call bad' : 'call',
    });
  }
  for (const ch of g.channels) {
    const id = `ch:${ch.system}/${ch.destination}`;
    out.push({ data: { id, kind: 'channel', name: ch.destination, label: `${ch.destination}\n${ch.system} · ${ch.messages} msgs` }, classes: 'channel' });
    for (const p of ch.producers) {
      out.push({ data: { id: `prod:${p.service}>${id}`, source: `svc:${p.service}`, target: id, label: `${p.messages}` }, classes: 'produce' });
    }
    for (const group of ch.consumerGroups) {
      // A group named after a service is drawn into it; otherwise it gets a node of its own.
      const target = services.has(group.group) ? `svc:${group.group}` : `grp:${group.group}`;
      if (!services.has(group.group) && !out.some((e) => e.data.id === target)) {
        out.push({ data: { id: target, kind: 'group', name: group.group, label: `group ${group.group}` }, classes: 'group' });
      }
      out.push({
        data: { id: `cons:${id}>${group.group}`, source: id, target, label: `${group.consumed} · wait p95 ${durationNanos(group.waits.p95Nanos)}` },
        classes: 'consume',
      });
    }
  }
  return out;
}

