import { describe, expect, it } from 'vitest';
import { durationMs, format, parse, toParams } from './search';

describe('parse', () => {
  it('reads a business key written name=value', () => {
    expect(parse('order.id=12345')).toEqual({ query: { key: 'order.id:12345' }, errors: [] });
  });
  it('reads every filter together', () => {
    const { query, errors } = parse('type:checkout state:running service:payments op:"charge card" min:2s max:1m stuck sla:false sort:duration asc');
    expect(errors).toEqual([]);
    expect(query).toEqual({
      type: 'checkout', state: 'running', service: 'payments', operation: 'charge card',
      minDuration: '2s', maxDuration: '1m', stuck: true, sla: false, sort: 'duration', asc: true,
    });
  });
  it('takes a 32-hex-digit id as a process or trace id', () => {
    expect(parse('4BF92F3577B34DA6A3CE929D0E0E4736').query).toEqual({ id: '4bf92f3577b34da6a3ce929d0e0e4736' });
  });
  it('names what it cannot read', () => {
    const { errors } = parse('state:stuck min:fast colour:red hello attr:x');
    expect(errors).toEqual([
      'state: "stuck" is not running, completed or failed',
      'min: "fast" is not a duration like 250ms, 30s, 5m',
      'unknown filter "colour:" (try type:, state:, service:, op:, attr:, min:, max:, since:, sort:)',
      '"hello": not a filter; a business key is written name=value (order.id=123)',
      'attr: write attr:NAME=VALUE',
    ]);
  });
});

describe('toParams and format', () => {
  it('maps a query to the API parameters', () => {
    const { query } = parse('order.id=7 type:refund since:1h attr:http.response.status_code=500 sla');
    const p = toParams(query, 3_600_000 + 5);
    expect(p.key).toBe('order.id:7');
    expect(p.type).toBe('refund');
    expect(p.start_from).toBe('5000000');
    expect(p.attr).toBe('http.response.status_code:500');
    expect(p.sla_breached).toBe('true');
  });
  it('writes a query back as the text that parses to it', () => {
    const text = 'order.id=7 type:checkout op:"charge card" min:250ms stuck sort:duration asc';
    const { query } = parse(text);
    expect(parse(format(query)).query).toEqual(query);
    expect(format(query)).toBe(text);
  });
  it('reads durations', () => {
    expect(durationMs('250ms')).toBe(250);
    expect(durationMs('1.5s')).toBe(1500);
    expect(durationMs('2h')).toBe(7_200_000);
    expect(durationMs('x')).toBeNaN();
  });
});
