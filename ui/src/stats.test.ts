import { describe, expect, it } from 'vitest';
import { histogram, percentilesOverTime, quantile } from './stats';

describe('quantile', () => {
  it('takes the nearest rank', () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantile(v, 0.5)).toBe(50);
    expect(quantile(v, 0.95)).toBe(95);
    expect(quantile(v, 0.99)).toBe(99);
    expect(quantile([7], 0.99)).toBe(7);
    expect(quantile([], 0.5)).toBeNaN();
  });
});

describe('histogram', () => {
  it('puts every positive value in one log-spaced bin', () => {
    const { edges, counts } = histogram([1, 10, 100, 1000, 1000], 3);
    expect(edges.map((e) => Math.round(e))).toEqual([1, 10, 100, 1000]);
    expect(counts).toEqual([1, 1, 3]);
    expect(counts.reduce((a, b) => a + b)).toBe(5);
  });
  it('is empty without values', () => {
    expect(histogram([0, NaN])).toEqual({ edges: [], counts: [] });
  });
});

describe('percentilesOverTime', () => {
  it('computes percentiles per start-time bucket, gaps included', () => {
    const r = percentilesOverTime(
      [
        { atMs: 0, durationMs: 10 }, { atMs: 500, durationMs: 30 }, { atMs: 900, durationMs: 20 },
        { atMs: 2100, durationMs: 5 },
      ],
      1000,
    );
    expect(r.x).toEqual([0, 1000, 2000]);
    expect(r.p50).toEqual([20, NaN, 5]);
    expect(r.p99).toEqual([30, NaN, 5]);
    expect(r.n).toEqual([3, 0, 1]);
  });
});
