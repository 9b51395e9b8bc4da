import { describe, expect, it } from 'vitest';
import { ago, count, duration, durationNanos, nanosToMs, percent, rate, shortId } from './format';

describe('nanosToMs', () => {
  it('reads decimal strings exactly past 2^53', () => {
    expect(nanosToMs('1700000000123456789')).toBeCloseTo(1700000000123.456789, 3);
    expect(nanosToMs('1500000')).toBe(1.5);
    expect(nanosToMs('999')).toBeCloseTo(0.000999, 9);
  });
  it('refuses what is not a number of nanoseconds', () => {
    expect(nanosToMs('12a')).toBeNaN();
    expect(nanosToMs('')).toBeNaN();
    expect(nanosToMs(undefined)).toBeNaN();
  });
});

describe('duration', () => {
  it('picks a unit people read at a glance', () => {
    expect(duration(0.85)).toBe('850 µs');
    expect(duration(3.456)).toBe('3.46 ms');
    expect(duration(12.44)).toBe('12.4 ms');
    expect(duration(450)).toBe('450 ms');
    expect(duration(3200)).toBe('3.20 s');
    expect(duration(42_000)).toBe('42.0 s');
    expect(duration(245_000)).toBe('4 m 05 s');
    expect(duration(2 * 3_600_000 + 10 * 60_000)).toBe('2 h 10 m');
    expect(duration(3 * 86_400_000)).toBe('3 d 0 h');
  });
  it('shows a dash for what is not a duration', () => {
    expect(duration(NaN)).toBe('—');
    expect(duration(-1)).toBe('—');
    expect(durationNanos(undefined)).toBe('—');
  });
  it('reads the API nanoseconds', () => {
    expect(durationNanos('1500000000')).toBe('1.50 s');
  });
});

describe('ago, count, rate, percent, shortId', () => {
  it('says how long ago', () => {
    expect(ago(10_000, 10_500)).toBe('just now');
    expect(ago(0, 12_000)).toBe('12 s ago');
    expect(ago(0, 185_000)).toBe('3 m 05 s ago');
    expect(ago(5_000, 1_000)).toBe('in 4 s');
  });
  it('counts compactly', () => {
    expect(count(999)).toBe('999');
    expect(count(1234)).toBe('1.2k');
    expect(count(34_567)).toBe('35k');
    expect(count(1_500_000)).toBe('1.5M');
  });
  it('shows rates per minute or per second', () => {
    expect(rate(4.25)).toBe('4.3/min');
    expect(rate(120)).toBe('120/min');
    expect(rate(6000)).toBe('100/s');
  });
  it('never rounds an SLA miss up to 100%', () => {
    expect(percent(1)).toBe('100%');
    expect(percent(0.9995)).toBe('99.95%');
    expect(percent(0.875)).toBe('87.5%');
    expect(percent(undefined)).toBe('—');
  });
  it('shortens long ids only', () => {
    expect(shortId('4bf92f3577b34da6a3ce929d0e0e4736')).toBe('4bf92f35…');
    expect(shortId('abc')).toBe('abc');
  });
});
