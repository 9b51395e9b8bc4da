// The HTTP API's shapes (see the server's openapi.json) and the calls the UI makes.

export type Nanos = string;

export interface Owner { team?: string; pager?: string; repo?: string; runbook?: string }
export interface Quantiles { p50Nanos: Nanos; p95Nanos: Nanos; p99Nanos: Nanos }

export type Waiting =
  | { kind: 'message'; system: string; destination: string; consumerGroup: string; sinceUnixNano: Nanos }
  | { kind: 'missing_parent'; count: number }
  | { kind: 'root' };

export type ProcessState = 'running' | 'completed' | 'failed';

export interface Process {
  id: string;
  processType: string;
  state: ProcessState;
  completionMode?: 'structural' | 'quiescence';
  stuck: boolean;
  slaBreached: boolean;
  startTimeUnixNano: Nanos;
  endTimeUnixNano: Nanos;
  durationNanos: Nanos;
  spans: number;
  errorSpans: number;
  traceIds: string[];
  keys: Record<string, string>;
  waitingFor: Waiting[];
  failure?: string;
  spec?: { passed: boolean; violations: string[] };
  owner?: Owner;
}

export interface AnyValue {
  stringValue?: string;
  intValue?: string;
  doubleValue?: number;
  boolValue?: boolean;
  bytesValue?: string;
  arrayValue?: { values: AnyValue[] };
  kvlistValue?: { values: KeyValue[] };
}
export interface KeyValue { key: string; value: AnyValue }

export interface Span {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: 'unspecified' | 'internal' | 'server' | 'client' | 'producer' | 'consumer';
  serviceName: string;
  startTimeUnixNano: Nanos;
  endTimeUnixNano: Nanos;
  durationNanos: Nanos;
  attributes: KeyValue[];
  events: { timeUnixNano: Nanos; name: string; attributes: KeyValue[] }[];
  links: { traceId: string; spanId: string; attributes: KeyValue[] }[];
  status: { code: 'unset' | 'ok' | 'error'; message?: string };
}

export type Segment =
  | { kind: 'operation'; traceId: string; spanId: string; service: string; name: string;
      startTimeUnixNano: Nanos; endTimeUnixNano: Nanos; durationNanos: Nanos }
  | { kind: 'channel_wait'; system: string; destination: string; consumerGroup: string;
      producerSpanId: string; consumerSpanId: string;
      startTimeUnixNano: Nanos; endTimeUnixNano: Nanos; durationNanos: Nanos };

export interface ProcessDetail { process: Process; timeline: Span[]; criticalPath: Segment[] }
export interface ProcessList { processes: Process[]; nextCursor?: string }

export interface TypeSummary {
  name: string;
  started: number;
  completed: number;
  failed: number;
  inFlight: number;
  stuck: number;
  slaBreached: number;
  specViolated: number;
  reopened: number;
  completedPerMinute: number;
  durations: Quantiles;
  slaCompliance?: number;
  owner?: Owner;
}
export interface ProcessTypes { windowMinutes: number; processTypes: TypeSummary[] }

export interface Graph {
  calls: { caller: string; callee: string; calls: number; errors: number; perMinute: number; durations: Quantiles }[];
  operations: { service: string; operation: string; count: number; errors: number; perMinute: number; durations: Quantiles }[];
  channels: {
    system: string;
    destination: string;
    messages: number;
    producers: { service: string; messages: number }[];
    consumerGroups: { group: string; consumed: number; waits: Quantiles; services?: string[] }[];
  }[];
}

export interface Triage {
  olderThanNanos: Nanos;
  processes: number;
  groups: {
    waitingFor?: Waiting;
    processes: number;
    oldestStartUnixNano: Nanos;
    types: { processType: string; processes: number; owner?: Owner }[];
    oldest: string[];
  }[];
}

export interface Spec {
  name: string;
  recognize: string;
  slaNanos?: Nanos;
  stuckAfterNanos?: Nanos;
  keys: string[];
  steps: { service: string; operation: string; order?: number; min: number; max?: number; terminal: boolean; critical: boolean }[];
  forbidErrors: boolean;
  maxRetries?: number;
  owner?: Owner;
}

export interface Alert {
  seq: number;
  rule: string;
  status: 'firing' | 'resolved';
  processType: string;
  processId?: string;
  event: string;
  startsAtUnixNano: Nanos;
  endsAtUnixNano?: Nanos;
  summary: string;
}

export type EventKind =
  | 'started' | 'completed' | 'failed' | 'sla_breached' | 'stuck' | 'spec_violated' | 'reopened';
export interface ProcessEvent {
  seq: number;
  kind: EventKind;
  processId: string;
  processType: string;
  atUnixNano: Nanos;
  detail?: string;
}

/** An answer that is not a success, with the server's message when it gave one. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
  /** The server could not be reached at all (down, or the network). */
  get unreachable(): boolean {
    return this.status === 0;
  }
}

const TOKEN_KEY = 'threadline.apiToken';

export function apiToken(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setApiToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

function headers(): HeadersInit {
  const token = apiToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}

export async function get<T>(path: string, params?: Record<string, string | undefined>): Promise<T> {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== '') query.append(k, v);
  const url = query.size ? `${path}?${query}` : path;
  let response: Response;
  try {
    response = await fetch(url, { headers: headers() });
  } catch (e) {
    throw new ApiError(0, `the server cannot be reached (${(e as Error).message})`);
  }
  if (!response.ok) {
    let message = response.statusText;
    try {
      const body = await response.json();
      message = body?.error?.message ?? body?.message ?? message;
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(response.status, message || `HTTP ${response.status}`);
  }
  return (await response.json()) as T;
}

export const api = {
  processTypes: (windowMinutes: number) =>
    get<ProcessTypes>('/api/v1/process-types', { window_minutes: String(windowMinutes) }),
  processes: (params: Record<string, string | undefined>) => get<ProcessList>('/api/v1/processes', params),
  process: (id: string) => get<ProcessDetail>(`/api/v1/processes/${encodeURIComponent(id)}`),
  graph: (windowMinutes: number) => get<Graph>('/api/v1/graph', { window_minutes: String(windowMinutes) }),
  triage: (olderThan?: string) => get<Triage>('/api/v1/triage', { older_than: olderThan }),
  services: () => get<{ services: string[] }>('/api/v1/services'),
  specs: () => get<{ specs: Spec[] }>('/api/v1/specs'),
  alerts: (limit: number) => get<{ alerts: Alert[] }>('/api/v1/alerts', { limit: String(limit) }),
};

/**
 * Parses Server-Sent Events from text chunks: feed it chunks as they arrive; it returns each
 * complete event (its id and data) and keeps a partial one for the next chunk.
 */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private id: string | undefined;

  push(chunk: string): { id?: string; data: string }[] {
    this.buffer += chunk;
    const out: { id?: string; data: string }[] = [];
    let nl: number;
    while ((nl = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, nl);
      const width = this.buffer.startsWith('\r\n', nl) ? 2 : 1;
      this.buffer = this.buffer.slice(nl + width);
      if (line === '') {
        if (this.data.length) out.push({ id: this.id, data: this.data.join('\n') });
        this.data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'id') this.id = value;
    }
    return out;
  }
}

/** Reads an event stream until it ends or `onEvent` returns false; returns the last id seen. */
async function readStream(
  url: string,
  lastId: string | undefined,
  signal: AbortSignal,
  onEvent: (event: ProcessEvent) => boolean | void,
  onOpen?: () => void,
): Promise<string | undefined> {
  const h: Record<string, string> = { ...(headers() as Record<string, string>), accept: 'text/event-stream' };
  if (lastId) h['last-event-id'] = lastId;
  const response = await fetch(url, { headers: h, signal });
  if (!response.ok || !response.body) throw new ApiError(response.status, `HTTP ${response.status}`);
  onOpen?.();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return lastId;
      for (const message of parser.push(value)) {
        if (message.id) lastId = message.id;
        let event: ProcessEvent;
        try {
          event = JSON.parse(message.data) as ProcessEvent;
        } catch {
          continue; // a message that is not an event (a notice of missed events)
        }
        if (onEvent(event) === false) return lastId;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * Follows the event stream (with the API token, which EventSource cannot send), resuming
 * from the last event seen after a break. On the first event, the `history` events logged
 * before it are read once too (oldest first), so trends and the feed start filled.
 * Returns a function that stops it.
 */
export function followEvents(
  onEvent: (event: ProcessEvent, past: boolean) => void,
  onState: (connected: boolean) => void,
  history = 2000,
): () => void {
  let stopped = false;
  let lastId: string | undefined;
  let backfilled = false;
  const controller = new AbortController();
  const backfill = (firstSeq: number) => {
    backfilled = true;
    if (firstSeq <= 1) return;
    const after = Math.max(0, firstSeq - 1 - history);
    void readStream(`/api/v1/events?after=${after}`, undefined, controller.signal, (e) => {
      if (e.seq >= firstSeq) return false;
      onEvent(e, true);
      return true;
    }).catch(() => {});
  };
  const run = async () => {
    let delay = 500;
    while (!stopped) {
      try {
        lastId = await readStream('/api/v1/events', lastId, controller.signal, (e) => {
          if (!backfilled) backfill(e.seq);
          onEvent(e, false);
        }, () => { onState(true); delay = 500; });
      } catch {
        if (stopped) return;
      }
      onState(false);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  };
  void run();
  return () => {
    stopped = true;
    controller.abort();
  };
}
