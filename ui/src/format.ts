// Formatting of the API's values for people. The API sends nanoseconds as decimal strings
// (they exceed 2^53); they are turned into numbers of milliseconds only for display.

/** Nanoseconds (decimal string or number) to milliseconds; NaN for anything else. */
export function nanosToMs(nanos: string | number | undefined | null): number {
  if (nanos === undefined || nanos === null || nanos === '') return NaN;
  if (typeof nanos === 'number') return nanos / 1e6;
  if (!/^[0-9]+$/.test(nanos)) return NaN;
  // Split so that the integer part stays exact well past 2^53 nanoseconds.
  const whole = nanos.length > 6 ? Number(nanos.slice(0, -6)) : 0;
  const frac = Number(nanos.slice(-6)) / 1e6;
  return whole + frac;
}

/** A duration in milliseconds, short and readable: 850 µs, 12.4 ms, 3.20 s, 4 m 05 s, 2 h 10 m. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 100 ? 1 : 0)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const totalSeconds = Math.round(s);
  const m = Math.floor(totalSeconds / 60);
  if (m < 60) return `${m} m ${String(totalSeconds % 60).padStart(2, '0')} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${String(m % 60).padStart(2, '0')} m`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** A duration given in nanoseconds (as the API sends it). */
export function durationNanos(nanos: string | number | undefined | null): string {
  return duration(nanosToMs(nanos));
}

/** How long ago `unixMs` was, from `nowMs`: "just now", "12 s ago", "3 m ago", "in 2 s". */
export function ago(unixMs: number, nowMs: number): string {
  if (!Number.isFinite(unixMs)) return '—';
  const delta = nowMs - unixMs;
  if (Math.abs(delta) < 1000) return 'just now';
  const text = duration(Math.abs(delta)).replace(/\.\d+ s$/, ' s');
  return delta > 0 ? `${text} ago` : `in ${text}`;
}

/** A wall-clock time, local, with milliseconds: 14:03:22.123. */
export function clock(unixMs: number): string {
  if (!Number.isFinite(unixMs)) return '—';
  const d = new Date(unixMs);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A count: 999, 1.2k, 34k, 1.5M. */
export function count(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const abs = Math.abs(n);
  if (abs < 1000) return String(Math.round(n));
  if (abs < 10_000) return `${(n / 1000).toFixed(1)}k`;
  if (abs < 1_000_000) return `${Math.round(n / 1000)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

/** A rate per minute, as per second when that reads better. */
export function rate(perMinute: number): string {
  if (!Number.isFinite(perMinute)) return '—';
  if (perMinute >= 600) return `${count(perMinute / 60)}/s`;
  return `${perMinute < 10 ? perMinute.toFixed(1) : Math.round(perMinute)}/min`;
}

/** A fraction 0..1 as a percentage; 99.95% keeps two decimals so it is not shown as 100%. */
export function percent(fraction: number | undefined | null): string {
  if (fraction === undefined || fraction === null || !Number.isFinite(fraction)) return '—';
  const p = fraction * 100;
  if (p === 100 || p === 0) return `${p}%`;
  if (p > 99 || p < 1) return `${p.toFixed(2)}%`;
  return `${p.toFixed(1)}%`;
}

/** A short form of a long hex id for tables: the first 8 characters and an ellipsis. */
export function shortId(id: string): string {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}
