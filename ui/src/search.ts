// The search box's language and its mapping to the API's process search:
//
//   order.id=123                 a business key (exact)
//   type:checkout state:running  process type, state (running, completed, failed)
//   service:payments op:"charge card"   processes with a span of that service / operation
//   attr:http.response.status_code=500  a span attribute
//   min:2s max:1m                duration bounds
//   since:1h  from:<ISO time> to:<ISO time>   start time range
//   stuck  sla  (or stuck:false, sla:false)
//   sort:duration|start|last_activity  asc
//   4bf92f3577b34da6a3ce929d0e0e4736   a process or trace id: opens it
//
// The parsed form is also the page's URL query, so a search can be shared.

export interface Query {
  id?: string;
  key?: string;
  type?: string;
  state?: string;
  service?: string;
  operation?: string;
  attr?: string;
  minDuration?: string;
  maxDuration?: string;
  since?: string;
  from?: string;
  to?: string;
  stuck?: boolean;
  sla?: boolean;
  sort?: string;
  asc?: boolean;
}

export interface Parsed {
  query: Query;
  errors: string[];
}

const HEX_ID = /^[0-9a-f]{32}$/i;
const DURATION = /^[0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h|d)$/;

/** Splits on spaces, keeping "quoted phrases" (and key:"quoted values") together. */
export function tokens(text: string): string[] {
  const out: string[] = [];
  const re = /(?:[^\s"]+|"[^"]*")+/g;
  for (const m of text.matchAll(re)) out.push(m[0].replace(/"/g, ''));
  return out;
}

export function parse(text: string): Parsed {
  const query: Query = {};
  const errors: string[] = [];
  for (const token of tokens(text.trim())) {
    const lower = token.toLowerCase();
    if (HEX_ID.test(token)) {
      query.id = lower;
      continue;
    }
    if (lower === 'stuck') { query.stuck = true; continue; }
    if (lower === 'sla' || lower === 'breached') { query.sla = true; continue; }
    if (lower === 'asc') { query.asc = true; continue; }
    const colon = token.indexOf(':');
    const eq = token.indexOf('=');
    if (colon > 0 && (eq < 0 || colon < eq)) {
      const name = token.slice(0, colon).toLowerCase();
      const value = token.slice(colon + 1);
      if (!value) { errors.push(`${name}: needs a value`); continue; }
      switch (name) {
        case 'type': query.type = value; break;
        case 'state':
          if (['running', 'completed', 'failed'].includes(value)) query.state = value;
          else errors.push(`state: "${value}" is not running, completed or failed`);
          break;
        case 'service': query.service = value; break;
        case 'op': case 'operation': query.operation = value; break;
        case 'attr':
          if (value.includes('=') || value.includes(':')) query.attr = value.replace('=', ':');
          else errors.push('attr: write attr:NAME=VALUE');
          break;
        case 'min': case 'max': case 'since':
          if (!DURATION.test(value)) { errors.push(`${name}: "${value}" is not a duration like 250ms, 30s, 5m`); break; }
          if (name === 'min') query.minDuration = value;
          else if (name === 'max') query.maxDuration = value;
          else query.since = value;
          break;
        case 'from': case 'to':
          if (Number.isNaN(Date.parse(value))) errors.push(`${name}: "${value}" is not a date and time`);
          else if (name === 'from') query.from = value;
          else query.to = value;
          break;
        case 'stuck': case 'sla':
          if (value !== 'true' && value !== 'false') { errors.push(`${name}: true or false`); break; }
          if (name === 'stuck') query.stuck = value === 'true';
          else query.sla = value === 'true';
          break;
        case 'sort':
          if (['start', 'duration', 'last_activity'].includes(value)) query.sort = value;
          else errors.push(`sort: "${value}" is not start, duration or last_activity`);
          break;
        case 'id': case 'trace':
          if (HEX_ID.test(value)) query.id = value.toLowerCase();
          else errors.push(`${name}: "${value}" is not a 32-hex-digit id`);
          break;
        default:
          errors.push(`unknown filter "${name}:" (try type:, state:, service:, op:, attr:, min:, max:, since:, sort:)`);
      }
      continue;
    }
    if (eq > 0 && eq < token.length - 1) {
      query.key = `${token.slice(0, eq)}:${token.slice(eq + 1)}`;
      continue;
    }
    errors.push(`"${token}": not a filter; a business key is written name=value (order.id=123)`);
  }
  return { query, errors };
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function durationMs(text: string): number {
  const m = /^([0-9.]+)([a-zµ]+)$/.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * (UNIT_MS[m[2]] ?? NaN);
}

function unixNanos(ms: number): string {
  return `${BigInt(Math.round(ms)) * 1_000_000n}`;
}

/** The API parameters of a query (`nowMs` anchors `since:`). */
export function toParams(query: Query, nowMs: number): Record<string, string | undefined> {
  const p: Record<string, string | undefined> = {};
  if (query.key) p.key = query.key;
  p.type = query.type;
  p.state = query.state;
  p.service = query.service;
  p.operation = query.operation;
  p.attr = query.attr;
  p.min_duration = query.minDuration;
  p.max_duration = query.maxDuration;
  if (query.since) p.start_from = unixNanos(nowMs - durationMs(query.since));
  if (query.from) p.start_from = unixNanos(Date.parse(query.from));
  if (query.to) p.start_to = unixNanos(Date.parse(query.to));
  if (query.stuck !== undefined) p.stuck = String(query.stuck);
  if (query.sla !== undefined) p.sla_breached = String(query.sla);
  p.sort = query.sort;
  if (query.asc) p.order = 'asc';
  return p;
}

/** The query written back as search text (what the box shows for a shared URL). */
export function format(query: Query): string {
  const q = (v: string) => (/\s/.test(v) ? `"${v}"` : v);
  const parts: string[] = [];
  if (query.id) parts.push(query.id);
  if (query.key) parts.push(q(query.key.replace(':', '=')));
  if (query.type) parts.push(`type:${q(query.type)}`);
  if (query.state) parts.push(`state:${query.state}`);
  if (query.service) parts.push(`service:${q(query.service)}`);
  if (query.operation) parts.push(`op:${q(query.operation)}`);
  if (query.attr) parts.push(`attr:${q(query.attr.replace(':', '='))}`);
  if (query.minDuration) parts.push(`min:${query.minDuration}`);
  if (query.maxDuration) parts.push(`max:${query.maxDuration}`);
  if (query.since) parts.push(`since:${query.since}`);
  if (query.from) parts.push(`from:${query.from}`);
  if (query.to) parts.push(`to:${query.to}`);
  if (query.stuck !== undefined) parts.push(query.stuck ? 'stuck' : 'stuck:false');
  if (query.sla !== undefined) parts.push(query.sla ? 'sla' : 'sla:false');
  if (query.sort) parts.push(`sort:${query.sort}`);
  if (query.asc) parts.push('asc');
  return parts.join(' ');
}
