// Duration statistics computed from a list of processes (the type page's histogram and
// percentiles over time).

/** The q-quantile (0..1) of sorted values, by nearest rank; NaN when there are none. */
export function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

/** Log-spaced histogram bins (durations span orders of magnitude): edges and counts. */
export function histogram(values: number[], bins = 20): { edges: number[]; counts: number[] } {
  const v = values.filter((x) => Number.isFinite(x) && x > 0);
  if (!v.length) return { edges: [], counts: [] };
  const lo = Math.log10(Math.min(...v));
  const hi = Math.log10(Math.max(...v));
  const span = Math.max(hi - lo, 1e-9);
  const edges = Array.from({ length: bins + 1 }, (_, i) => 10 ** (lo + (span * i) / bins));
  const counts = new Array<number>(bins).fill(0);
  for (const x of v) {
    const i = Math.min(bins - 1, Math.floor(((Math.log10(x) - lo) / span) * bins));
    counts[i]++;
  }
  return { edges, counts };
}

/** p50/p95/p99 of durations per time bucket of start time. Buckets with no value get NaN. */
export function percentilesOverTime(
  points: { atMs: number; durationMs: number }[],
  bucketMs: number,
): { x: number[]; p50: number[]; p95: number[]; p99: number[]; n: number[] } {
  const out = { x: [] as number[], p50: [] as number[], p95: [] as number[], p99: [] as number[], n: [] as number[] };
  if (!points.length) return out;
  const first = Math.floor(Math.min(...points.map((p) => p.atMs)) / bucketMs) * bucketMs;
  const last = Math.floor(Math.max(...points.map((p) => p.atMs)) / bucketMs) * bucketMs;
  const buckets = new Map<number, number[]>();
  for (const p of points) {
    const b = Math.floor(p.atMs / bucketMs) * bucketMs;
    const list = buckets.get(b) ?? [];
    list.push(p.durationMs);
    buckets.set(b, list);
  }
  for (let b = first; b <= last; b += bucketMs) {
    const d = (buckets.get(b) ?? []).sort((a, c) => a - c);
    out.x.push(b);
    out.p50.push(quantile(d, 0.5));
    out.p95.push(quantile(d, 0.95));
    out.p99.push(quantile(d, 0.99));
    out.n.push(d.length);
  }
  return out;
}
