//! The shop: its services and channels, the four process types as span generators, the faults,
//! and what each fault must lead to.
//!
//! A process is generated whole when it starts: every span with its times, each queued to be
//! exported when it ends (later for a late span). Faults change the plan: a lost message has
//! no consumer (nor anything after it), a slow consumer or a consumer group that is down makes
//! a message wait, a retry is a failed attempt before the good one, a dead letter is three
//! failed attempts and a send to `shop.dlq`, a step error fails a critical step. Thresholds
//! come from the spec of the same speed, and planned waits keep clear of them (a wait is either
//! well under a threshold or well over), so every expectation is exact.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use threadline_core::id::{SpanId, TraceId};
use threadline_core::span::{Link, Resource, Scope, Span, SpanKind, Status, StatusCode};
use threadline_core::value::KeyValue;

use crate::rng::Rng;

const MS: f64 = 1e6;
const SEC: f64 = 1e9;

/// The 25 services.
pub const SERVICES: [&str; 25] = [
    "frontend",
    "cart",
    "pricing",
    "orders",
    "payments",
    "payment-gateway",
    "fraud",
    "inventory",
    "warehouse",
    "fulfilment",
    "shipping",
    "carrier-gateway",
    "notifications",
    "email",
    "sms",
    "customer-timeline",
    "refunds",
    "ledger",
    "merchant-portal",
    "catalog-import",
    "search-indexer",
    "media",
    "catalog",
    "inventory-sync",
    "supplier-gateway",
];

/// The 10 channels (Kafka topics).
pub const CHANNELS: [&str; 10] = [
    "orders.placed",
    "payments.completed",
    "inventory.reserved",
    "fulfilment.requested",
    "shipments.created",
    "refunds.requested",
    "notifications.send",
    "catalog.items",
    "inventory.updates",
    "shop.dlq",
];

/// The process types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    Checkout,
    Refund,
    CatalogImport,
    InventorySync,
}

impl ProcessKind {
    pub const ALL: [ProcessKind; 4] = [
        ProcessKind::Checkout,
        ProcessKind::Refund,
        ProcessKind::CatalogImport,
        ProcessKind::InventorySync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProcessKind::Checkout => "checkout",
            ProcessKind::Refund => "refund",
            ProcessKind::CatalogImport => "catalog-import",
            ProcessKind::InventorySync => "inventory-sync",
        }
    }

    /// The business key that names one process of the type.
    pub fn id_key(self) -> &'static str {
        match self {
            ProcessKind::Checkout => "order.id",
            ProcessKind::Refund => "refund.id",
            ProcessKind::CatalogImport => "import.id",
            ProcessKind::InventorySync => "sync.id",
        }
    }

    /// SLA and stuck threshold at speed 1, in seconds. `stuck_after` is at least twice the
    /// SLA, so a slow (but not stuck) message can breach the SLA.
    fn thresholds(self) -> (f64, f64) {
        match self {
            ProcessKind::Checkout => (30.0, 60.0),
            ProcessKind::Refund => (60.0, 150.0),
            ProcessKind::CatalogImport => (300.0, 600.0),
            ProcessKind::InventorySync => (20.0, 60.0),
        }
    }

    /// Share of new processes.
    fn weight(self) -> f64 {
        match self {
            ProcessKind::Checkout => 0.70,
            ProcessKind::Refund => 0.10,
            ProcessKind::CatalogImport => 0.02,
            ProcessKind::InventorySync => 0.18,
        }
    }
}

/// Probabilities of each fault, per process (`group_outage`: per consumer group per minute of
/// simulated time; `clock_skew`: whether some services' clocks are off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRates {
    pub step_error: f64,
    pub retry: f64,
    pub dead_letter: f64,
    pub lost_message: f64,
    pub slow_consumer: f64,
    pub late_span: f64,
    pub group_outage: f64,
    pub clock_skew: bool,
}

impl FaultRates {
    pub fn none() -> Self {
        Self {
            step_error: 0.0,
            retry: 0.0,
            dead_letter: 0.0,
            lost_message: 0.0,
            slow_consumer: 0.0,
            late_span: 0.0,
            group_outage: 0.0,
            clock_skew: false,
        }
    }

    /// A few of each, as the demo shows them.
    pub fn demo() -> Self {
        Self {
            step_error: 0.02,
            retry: 0.05,
            dead_letter: 0.01,
            lost_message: 0.01,
            slow_consumer: 0.02,
            late_span: 0.02,
            group_outage: 0.02,
            clock_skew: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShopConfig {
    /// Simulated durations are divided by this: 1 is real time, 60 a minute per second.
    pub speed: f64,
    /// New processes per second of wall time.
    pub processes_per_sec: f64,
    pub faults: FaultRates,
    pub seed: u64,
    /// Which process types start (all four by default).
    pub kinds: Vec<ProcessKind>,
}

impl Default for ShopConfig {
    fn default() -> Self {
        Self {
            speed: 1.0,
            processes_per_sec: 5.0,
            faults: FaultRates::demo(),
            seed: 1,
            kinds: ProcessKind::ALL.to_vec(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    StepError,
    Retry,
    DeadLetter,
    LostMessage,
    SlowConsumer,
    GroupOutage,
    LateSpan,
    ClockSkew,
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// The process it hit (none for a clock skew, which hits a service).
    pub process: Option<(String, String)>,
    /// Where: a channel and consumer group, a service, a step.
    pub at: String,
}

/// How a process must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed,
    /// A lost message: it never ends.
    Running,
}

/// What Threadline must report for one process.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub kind: ProcessKind,
    /// The business key naming it (`order.id`, ...) and its value.
    pub key: (String, String),
    pub outcome: Outcome,
    /// Messages awaited past `stuck_after`: (channel, consumer group).
    pub stuck: Vec<(String, String)>,
    pub sla_breached: bool,
    /// The faults that hit it.
    pub faults: Vec<FaultKind>,
    /// When its last span is sent (Unix ns).
    pub last_span_at: u64,
    /// When all of the above is observable (Unix ns), with the engine's timers.
    pub settled_by: u64,
}

#[derive(Debug, Clone, Copy)]
struct Outage {
    group: &'static str,
    from: u64,
    to: u64,
}

/// The simulated shop.
#[derive(Debug)]
pub struct Shop {
    config: ShopConfig,
    rng: Rng,
    next_start: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    pending: std::collections::HashMap<u64, Span>,
    seq: u64,
    expectations: Vec<Expectation>,
    faults: Vec<Fault>,
    outages: Vec<Outage>,
    outages_until: u64,
    resources: Vec<(&'static str, Arc<Resource>, i64)>,
    scope: Arc<Scope>,
    counter: u64,
}

/// The service running a consumer group.
fn service_of_group(group: &str) -> &'static str {
    match group {
        "payments" | "payments-refunds" => "payments",
        "inventory" | "inventory-sync-consumers" => "inventory",
        "fulfilment" => "fulfilment",
        "shipping" => "shipping",
        "notifications" => "notifications",
        "customer-timeline" => "customer-timeline",
        "search-indexer" => "search-indexer",
        "media" => "media",
        _ => "unknown",
    }
}

/// Builds one process's spans.
struct Plan<'a> {
    rng: &'a mut Rng,
    resources: &'a [(&'static str, Arc<Resource>, i64)],
    scope: &'a Arc<Scope>,
    speed: f64,
    /// Baggage entries copied to every span's attributes.
    baggage: Vec<KeyValue>,
    spans: Vec<(u64, Span)>,
    late_rate: f64,
    late: bool,
}

/// A place in a trace: its trace and the span to hang children on.
#[derive(Debug, Clone, Copy)]
struct At {
    trace: TraceId,
    parent: SpanId,
}

impl Plan<'_> {
    /// `ms` of simulated time as wall nanoseconds.
    fn dur(&self, ms: f64) -> u64 {
        to_ns(ms * MS / self.speed)
    }

    fn jitter(&mut self, lo_ms: f64, hi_ms: f64) -> u64 {
        let ms = self.rng.between(lo_ms, hi_ms);
        self.dur(ms)
    }

    fn span_id(&mut self) -> SpanId {
        SpanId::from_bytes(self.rng.id8()).unwrap_or_else(|_| unreachable_id())
    }

    #[allow(clippy::too_many_arguments, reason = "one span's fields")]
    fn span(
        &mut self,
        service: &str,
        name: &str,
        kind: SpanKind,
        trace: TraceId,
        parent: Option<SpanId>,
        start: u64,
        end: u64,
        attributes: Vec<KeyValue>,
    ) -> SpanId {
        let id = self.span_id();
        let (resource, skew) = self
            .resources
            .iter()
            .find(|(name, _, _)| *name == service)
            .map(|(_, r, skew)| (Arc::clone(r), *skew))
            .unwrap_or_else(|| (Arc::clone(&self.resources[0].1), 0));
        let shift = |t: u64| t.saturating_add_signed(skew);
        let mut all = attributes;
        all.extend(self.baggage.iter().cloned());
        let span = Span {
            trace_id: trace,
            span_id: id,
            parent_span_id: parent,
            trace_state: String::new(),
            flags: 1,
            name: name.into(),
            kind,
            start_time_unix_nano: shift(start),
            end_time_unix_nano: shift(end.max(start + 1)),
            attributes: all,
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Status::default(),
            resource,
            scope: Arc::clone(self.scope),
        };
        // Sent when it ends, as a batching SDK would (a late one some seconds after).
        let mut send_at = end;
        if self.rng.chance(self.late_rate) {
            send_at += self.jitter(1000.0, 3000.0);
            self.late = true;
        }
        self.spans.push((send_at, span));
        id
    }

    /// Moves the end (and the send) of the span at `index` to `end`.
    fn set_end(&mut self, index: usize, end: u64) {
        let (send_at, span) = &mut self.spans[index];
        let service = span.resource.service_name();
        let skew = self.resources.iter().find(|(n, _, _)| *n == service).map_or(0, |r| r.2);
        span.end_time_unix_nano =
            end.saturating_add_signed(skew).max(span.start_time_unix_nano + 1);
        *send_at = (*send_at).max(end);
    }

    fn last_mut(&mut self) -> &mut Span {
        &mut self.spans.last_mut().expect("a span was just added").1
    }

    fn fail_last(&mut self, message: &str) {
        let span = self.last_mut();
        span.status = Status { code: StatusCode::Error, message: message.to_owned() };
        span.events.push(threadline_core::span::Event {
            time_unix_nano: span.end_time_unix_nano,
            name: "exception".to_owned(),
            attributes: vec![
                KeyValue::new("exception.type", "ShopError"),
                KeyValue::new("exception.message", message),
            ],
            dropped_attributes_count: 0,
        });
    }

    /// A synchronous call from `at` (a span of `from`): CLIENT in `from`, SERVER in `to`.
    /// Returns the server span and when the call ended.
    #[allow(clippy::too_many_arguments, reason = "a call's fields")]
    fn call(
        &mut self,
        at: At,
        from: &str,
        to: &str,
        name: &str,
        grpc: bool,
        start: u64,
        ms: f64,
    ) -> (At, u64) {
        let end = start + self.dur(ms);
        let net = self.dur(0.4);
        let attrs = if grpc {
            let (service, method) = name.rsplit_once('/').unwrap_or((name, name));
            vec![
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service),
                KeyValue::new("rpc.method", method),
                KeyValue::new("server.address", to),
            ]
        } else {
            let (method, route) = name.split_once(' ').unwrap_or(("GET", name));
            vec![
                KeyValue::new("http.request.method", method),
                KeyValue::new("url.full", format!("http://{to}{route}")),
                KeyValue::new("server.address", to),
                KeyValue::new("http.response.status_code", 200_i64),
            ]
        };
        let client = self.span(
            from,
            name,
            SpanKind::Client,
            at.trace,
            Some(at.parent),
            start,
            end,
            attrs.clone(),
        );
        let mut server_attrs = attrs;
        if !grpc {
            server_attrs.retain(|kv| kv.key != "url.full" && kv.key != "server.address");
            server_attrs
                .push(KeyValue::new("http.route", name.split_once(' ').map_or(name, |(_, r)| r)));
        }
        let server = self.span(
            to,
            name,
            SpanKind::Server,
            at.trace,
            Some(client),
            start + net,
            end.saturating_sub(net).max(start + net + 1),
            server_attrs,
        );
        (At { trace: at.trace, parent: server }, end)
    }

    /// A PRODUCER span sending one message on `channel`.
    fn send(&mut self, at: At, service: &str, channel: &str, start: u64) -> (SpanId, u64) {
        let end = start + self.dur(1.5);
        let id = self.span(
            service,
            &format!("{channel} publish"),
            SpanKind::Producer,
            at.trace,
            Some(at.parent),
            start,
            end,
            messaging(channel, "publish", None),
        );
        (id, end)
    }

    /// A CONSUMER span of `group` processing the message `message` (sent in `from`), in the
    /// producer's trace (propagated headers) or, as a batch consumer does, in a new trace
    /// linking to it.
    #[allow(clippy::too_many_arguments, reason = "a consumption's fields")]
    fn consume(
        &mut self,
        from: At,
        message: SpanId,
        channel: &str,
        group: &str,
        new_trace: bool,
        start: u64,
        ms: f64,
    ) -> (At, u64) {
        let service = service_of_group(group);
        let end = start + self.dur(ms);
        let name = format!("{channel} process");
        let attrs = messaging(channel, "process", Some(group));
        if new_trace {
            let trace =
                TraceId::from_bytes(self.rng.id16()).unwrap_or_else(|_| unreachable_trace());
            let id = self.span(service, &name, SpanKind::Consumer, trace, None, start, end, attrs);
            self.last_mut().links.push(Link {
                trace_id: from.trace,
                span_id: message,
                trace_state: String::new(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
                flags: 1,
            });
            (At { trace, parent: id }, end)
        } else {
            let id = self.span(
                service,
                &name,
                SpanKind::Consumer,
                from.trace,
                Some(message),
                start,
                end,
                attrs,
            );
            (At { trace: from.trace, parent: id }, end)
        }
    }

    fn internal(
        &mut self,
        at: At,
        service: &str,
        name: &str,
        start: u64,
        ms: f64,
    ) -> (SpanId, u64) {
        let end = start + self.dur(ms);
        (
            self.span(
                service,
                name,
                SpanKind::Internal,
                at.trace,
                Some(at.parent),
                start,
                end,
                Vec::new(),
            ),
            end,
        )
    }
}

fn unreachable_id() -> SpanId {
    SpanId::from_bytes([1; 8]).expect("non-zero")
}

fn unreachable_trace() -> TraceId {
    TraceId::from_bytes([1; 16]).expect("non-zero")
}

fn messaging(channel: &str, operation: &str, group: Option<&str>) -> Vec<KeyValue> {
    let mut attrs = vec![
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("messaging.destination.name", channel),
        KeyValue::new("messaging.operation.type", operation),
        KeyValue::new("messaging.operation.name", operation),
    ];
    if let Some(group) = group {
        attrs.push(KeyValue::new("messaging.consumer.group.name", group));
    }
    attrs
}

fn to_ns(ns: f64) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "clamped")]
    let out = ns.clamp(0.0, 1e18) as u64;
    out
}

/// What the faults of one process do, decided before its spans are planned.
#[derive(Debug, Default)]
struct Decisions {
    /// The hop (index into the process's hops) whose message is lost.
    lost: Option<usize>,
    slow: Option<usize>,
    retry: Option<usize>,
    dead_letter: Option<usize>,
    step_error: bool,
}

/// One message hop of a process: the channel and the group whose consumption it is.
#[derive(Debug, Clone, Copy)]
struct Hop {
    channel: &'static str,
    group: &'static str,
}

impl Shop {
    pub fn new(config: ShopConfig, start_unix_nano: u64) -> Self {
        let mut rng = Rng::new(config.seed);
        let resources = SERVICES
            .iter()
            .map(|name| {
                let skew = if config.faults.clock_skew && rng.chance(0.15) {
                    let ms = rng.between(40.0, 250.0) * if rng.chance(0.5) { 1.0 } else { -1.0 };
                    #[allow(clippy::cast_possible_truncation, reason = "milliseconds of skew")]
                    let ns = (ms * MS / config.speed) as i64;
                    ns
                } else {
                    0
                };
                let resource = Resource {
                    attributes: vec![
                        KeyValue::new("service.name", *name),
                        KeyValue::new("service.namespace", "shop"),
                        KeyValue::new("service.version", "1.4.2"),
                        KeyValue::new("deployment.environment.name", "demo"),
                        KeyValue::new("telemetry.sdk.language", "rust"),
                    ],
                    dropped_attributes_count: 0,
                    schema_url: String::new(),
                };
                (*name, Arc::new(resource), skew)
            })
            .collect::<Vec<_>>();
        let faults = resources
            .iter()
            .filter(|(_, _, skew)| *skew != 0)
            .map(|(name, _, skew)| Fault {
                kind: FaultKind::ClockSkew,
                process: None,
                at: format!("{name} ({:+} ms)", *skew as f64 * config.speed / MS),
            })
            .collect();
        Self {
            config,
            rng,
            next_start: start_unix_nano,
            queue: BinaryHeap::new(),
            pending: std::collections::HashMap::new(),
            seq: 0,
            expectations: Vec::new(),
            faults,
            outages: Vec::new(),
            outages_until: start_unix_nano,
            resources,
            scope: Arc::new(Scope {
                name: "shop.instrumentation".to_owned(),
                version: "1.4.2".to_owned(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
                schema_url: String::new(),
            }),
            counter: 0,
        }
    }

    pub fn config(&self) -> &ShopConfig {
        &self.config
    }

    /// Every process started so far, with what Threadline must report for it.
    pub fn expectations(&self) -> &[Expectation] {
        &self.expectations
    }

    /// Every fault injected so far.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Spans planned and not yet due.
    pub fn pending_spans(&self) -> usize {
        self.queue.len()
    }

    /// Starts the processes due by `now` and returns the spans due by `now`, oldest first.
    pub fn due(&mut self, now: u64) -> Vec<Span> {
        if self.config.processes_per_sec > 0.0 {
            while self.next_start <= now {
                let at = self.next_start;
                let kind = self.pick_kind();
                self.start(kind, at);
                // Poisson arrivals.
                let gap = -(1.0 - self.rng.unit()).ln() / self.config.processes_per_sec;
                self.next_start += to_ns(gap * SEC).max(1);
            }
        }
        self.take_due(now)
    }

    /// The spans due by `now`, without starting anything.
    pub fn take_due(&mut self, now: u64) -> Vec<Span> {
        let mut out = Vec::new();
        while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at > now {
                break;
            }
            self.queue.pop();
            if let Some(span) = self.pending.remove(&seq) {
                out.push(span);
            }
        }
        out
    }

    fn pick_kind(&mut self) -> ProcessKind {
        let total: f64 = self.config.kinds.iter().map(|k| k.weight()).sum();
        let mut x = self.rng.unit() * total;
        for kind in &self.config.kinds {
            x -= kind.weight();
            if x <= 0.0 {
                return *kind;
            }
        }
        self.config.kinds.last().copied().unwrap_or(ProcessKind::Checkout)
    }

    fn scaled(&self, secs: f64) -> u64 {
        to_ns(secs * SEC / self.config.speed)
    }

    /// Plans outages of consumer groups through `until`: each group goes down with
    /// `group_outage` probability per simulated minute, for one to two of its stuck
    /// thresholds.
    fn plan_outages(&mut self, until: u64) {
        let minute = self.scaled(60.0);
        while self.outages_until <= until {
            let from = self.outages_until;
            self.outages_until += minute;
            for group in ["fulfilment", "notifications", "inventory"] {
                if self.rng.chance(self.config.faults.group_outage) {
                    let start = from + to_ns(self.rng.unit() * minute as f64);
                    // Long enough that what it holds up is stuck (checkout's threshold).
                    let secs = self.rng.between(80.0, 120.0);
                    let length = self.scaled(secs);
                    self.outages.push(Outage { group, from: start, to: start + length });
                    self.faults.push(Fault {
                        kind: FaultKind::GroupOutage,
                        process: None,
                        at: format!(
                            "consumer group {group} down for {:.0} s",
                            length as f64 * self.config.speed / SEC
                        ),
                    });
                }
            }
        }
    }

    /// Starts one process of `kind` at `at`.
    pub fn start(&mut self, kind: ProcessKind, at: u64) {
        self.plan_outages(at + self.scaled(kind.thresholds().1 * 2.0));
        self.counter += 1;
        let n = self.counter;
        let id_value = match kind {
            ProcessKind::Checkout => format!("o-{n:06}"),
            ProcessKind::Refund => format!("r-{n:06}"),
            ProcessKind::CatalogImport => format!("imp-{n:06}"),
            ProcessKind::InventorySync => format!("sync-{n:06}"),
        };
        let merchant = format!("m-{:03}", self.rng.below(40) + 1);
        let mut baggage = vec![KeyValue::new(kind.id_key(), id_value.clone())];
        match kind {
            ProcessKind::Checkout => baggage.push(KeyValue::new("merchant.id", merchant)),
            ProcessKind::Refund => {
                baggage.push(KeyValue::new(
                    "order.id",
                    format!(
                        "o-{:06}",
                        self.rng.below(usize::try_from(n).unwrap_or(usize::MAX)) + 1
                    ),
                ));
                baggage.push(KeyValue::new("process.type", "refund"));
            }
            ProcessKind::CatalogImport => baggage.push(KeyValue::new("merchant.id", merchant)),
            ProcessKind::InventorySync => {
                baggage.push(KeyValue::new("sku", format!("sku-{:05}", self.rng.below(5000) + 1)));
            }
        }
        let hops = hops(kind, &mut self.rng);
        let f = self.config.faults;
        let mut decisions = Decisions::default();
        let pick = |rng: &mut Rng, hops: &[Hop], ok: &dyn Fn(&Hop) -> bool| {
            let candidates: Vec<usize> = (0..hops.len()).filter(|i| ok(&hops[*i])).collect();
            (!candidates.is_empty()).then(|| candidates[rng.below(candidates.len())])
        };
        // At most one fault that decides the outcome; noise faults come on top.
        let r = self.rng.unit();
        let mut acc = 0.0;
        for (rate, which) in
            [(f.lost_message, 0), (f.dead_letter, 1), (f.step_error, 2), (f.slow_consumer, 3)]
        {
            acc += rate;
            if r < acc {
                match which {
                    0 => decisions.lost = pick(&mut self.rng, &hops, &|_| true),
                    1 => {
                        decisions.dead_letter =
                            pick(&mut self.rng, &hops, &|h| dead_letter_ok(h.group));
                    }
                    2 => {
                        decisions.step_error =
                            kind == ProcessKind::Checkout || kind == ProcessKind::Refund;
                    }
                    _ => decisions.slow = pick(&mut self.rng, &hops, &|_| true),
                }
                break;
            }
        }
        if self.rng.chance(f.retry) {
            decisions.retry = pick(&mut self.rng, &hops, &|h| retry_ok(h.group));
        }
        let (sla, stuck_after) = kind.thresholds();
        let (sla_ns, stuck_ns) = (self.scaled(sla), self.scaled(stuck_after));
        let outages = self.outages.clone();
        let mut plan = Plan {
            rng: &mut self.rng,
            resources: &self.resources,
            scope: &self.scope,
            speed: self.config.speed,
            baggage,
            spans: Vec::new(),
            late_rate: f.late_span,
            late: false,
        };
        let mut ctx = Run {
            hops: &hops,
            decisions: &decisions,
            outages: &outages,
            stuck_ns,
            sla_ns,
            stuck: Vec::new(),
            failed: false,
            lost: None,
            faults: Vec::new(),
            end: at,
            hop: 0,
        };
        match kind {
            ProcessKind::Checkout => checkout(&mut plan, &mut ctx, at),
            ProcessKind::Refund => refund(&mut plan, &mut ctx, at),
            ProcessKind::CatalogImport => catalog_import(&mut plan, &mut ctx, at),
            ProcessKind::InventorySync => inventory_sync(&mut plan, &mut ctx, at),
        }
        let late = plan.late;
        let spans = std::mem::take(&mut plan.spans);
        let mut faults = ctx.faults.clone();
        if late {
            faults.push((FaultKind::LateSpan, "a span sent seconds after it ended".to_owned()));
        }
        let last_span_at = spans.iter().map(|(t, _)| *t).max().unwrap_or(at);
        let outcome = if ctx.lost.is_some() {
            Outcome::Running
        } else if ctx.failed {
            Outcome::Failed
        } else {
            Outcome::Completed
        };
        let duration = ctx.end.saturating_sub(at);
        let sla_breached = outcome == Outcome::Running || duration > sla_ns;
        // A breach is decided at start + SLA; a stuck message at its send + threshold.
        let settled_by = match ctx.lost {
            Some(sent) => (sent + stuck_ns).max(at + sla_ns),
            None => last_span_at.max(at + sla_ns),
        };
        for (kind_of, at_text) in &faults {
            self.faults.push(Fault {
                kind: *kind_of,
                process: Some((kind.id_key().to_owned(), id_value.clone())),
                at: at_text.clone(),
            });
        }
        self.expectations.push(Expectation {
            kind,
            key: (kind.id_key().to_owned(), id_value),
            outcome,
            stuck: ctx.stuck.clone(),
            sla_breached,
            faults: faults.iter().map(|(k, _)| *k).collect(),
            last_span_at,
            settled_by,
        });
        for (send_at, span) in spans {
            self.seq += 1;
            self.queue.push(Reverse((send_at, self.seq)));
            self.pending.insert(self.seq, span);
        }
    }

    /// The spec file of the shop at this speed: types, keys, SLAs, steps, owners, channels.
    pub fn spec_toml(&self) -> String {
        spec_toml(self.config.speed)
    }
}

/// Groups whose consumption may be retried or dead-lettered (not steps the specs mark
/// critical).
fn retry_ok(group: &str) -> bool {
    !matches!(group, "payments")
}

fn dead_letter_ok(group: &str) -> bool {
    matches!(group, "fulfilment" | "shipping" | "search-indexer" | "inventory-sync-consumers")
}

/// The message hops a process of `kind` will make, in order.
fn hops(kind: ProcessKind, rng: &mut Rng) -> Vec<Hop> {
    let hop = |channel, group| Hop { channel, group };
    match kind {
        ProcessKind::Checkout => vec![
            hop("orders.placed", "payments"),
            hop("payments.completed", "inventory"),
            hop("inventory.reserved", "fulfilment"),
            hop("fulfilment.requested", "shipping"),
            hop("shipments.created", "notifications"),
            hop("shipments.created", "customer-timeline"),
        ],
        ProcessKind::Refund => {
            vec![
                hop("refunds.requested", "payments-refunds"),
                hop("notifications.send", "notifications"),
            ]
        }
        ProcessKind::CatalogImport => {
            let items = 12 + rng.below(12);
            let mut out = Vec::new();
            for _ in 0..items {
                out.push(hop("catalog.items", "search-indexer"));
                out.push(hop("catalog.items", "media"));
            }
            out
        }
        ProcessKind::InventorySync => vec![hop("inventory.updates", "inventory-sync-consumers")],
    }
}

/// The state of one process's planning: which hop comes next and what the faults did.
struct Run<'a> {
    hops: &'a [Hop],
    decisions: &'a Decisions,
    outages: &'a [Outage],
    stuck_ns: u64,
    sla_ns: u64,
    stuck: Vec<(String, String)>,
    failed: bool,
    /// When the lost message was sent.
    lost: Option<u64>,
    faults: Vec<(FaultKind, String)>,
    /// The end of the last span so far.
    end: u64,
    hop: usize,
}

impl Run<'_> {
    fn track(&mut self, end: u64) {
        self.end = self.end.max(end);
    }

    /// Delivers the message `message` sent at `sent` to the next hop's group: when its
    /// consumer starts, or `None` when the message is lost. Waits keep clear of the stuck
    /// threshold: under 0.8× or over 1.25×.
    fn deliver(&mut self, plan: &mut Plan<'_>, sent: u64) -> Option<(Hop, u64, usize)> {
        let index = self.hop;
        self.hop += 1;
        let hop = *self.hops.get(index)?;
        let place = format!("{} / {}", hop.channel, hop.group);
        if self.decisions.lost == Some(index) {
            self.faults.push((FaultKind::LostMessage, place));
            self.stuck.push((hop.channel.to_owned(), hop.group.to_owned()));
            self.lost = Some(sent);
            return None;
        }
        let mut start = sent + plan.jitter(3.0, 40.0);
        if self.decisions.slow == Some(index) {
            // A backlog: the wait alone takes 1.3 to 1.5 SLAs, under 0.8 stuck thresholds.
            #[allow(clippy::cast_precision_loss, reason = "durations")]
            let wait = self.sla_ns as f64 * plan.rng.between(1.3, 1.5);
            start = sent + to_ns(wait);
            self.faults.push((FaultKind::SlowConsumer, place.clone()));
        }
        if let Some(back) = self
            .outages
            .iter()
            .find(|o| o.group == hop.group && o.from <= start && start < o.to)
            .map(|o| o.to)
        {
            #[allow(clippy::cast_precision_loss, reason = "durations")]
            let clear = sent + to_ns(self.stuck_ns as f64 * 1.25);
            start = back.max(clear) + plan.jitter(5.0, 50.0);
            self.faults.push((FaultKind::GroupOutage, place.clone()));
        }
        #[allow(clippy::cast_precision_loss, reason = "durations")]
        let (wait, threshold) = ((start - sent) as f64, self.stuck_ns as f64);
        if wait > 0.8 * threshold && wait < 1.25 * threshold {
            start = sent + to_ns(1.25 * threshold) + 1;
        }
        if start - sent >= self.stuck_ns {
            self.stuck.push((hop.channel.to_owned(), hop.group.to_owned()));
        }
        Some((hop, start, index))
    }

    /// Consumes the delivered message: retries and dead letters happen here. Returns the
    /// consumer's place and end, or `None` when the message went to the dead-letter channel.
    #[allow(clippy::too_many_arguments, reason = "a consumption's fields")]
    fn consume(
        &mut self,
        plan: &mut Plan<'_>,
        from: At,
        message: SpanId,
        hop: Hop,
        start: u64,
        index: usize,
        new_trace: bool,
        ms: f64,
    ) -> Option<(At, u64)> {
        let place = format!("{} / {}", hop.channel, hop.group);
        let mut start = start;
        let attempts_failing = if self.decisions.dead_letter == Some(index) {
            3
        } else if self.decisions.retry == Some(index) {
            1
        } else {
            0
        };
        for attempt in 0..attempts_failing {
            let (at, end) =
                plan.consume(from, message, hop.channel, hop.group, new_trace, start, ms);
            plan.fail_last(&format!("processing failed (attempt {})", attempt + 1));
            self.track(end);
            start = end + plan.jitter(50.0, 200.0);
            if attempt + 1 == attempts_failing && attempts_failing == 3 {
                let service = service_of_group(hop.group);
                let (_, sent) = plan.send(at, service, "shop.dlq", end);
                self.track(sent);
                self.faults.push((FaultKind::DeadLetter, place));
                self.failed = true;
                return None;
            }
        }
        if attempts_failing == 1 {
            self.faults.push((FaultKind::Retry, place));
        }
        let (at, end) = plan.consume(from, message, hop.channel, hop.group, new_trace, start, ms);
        self.track(end);
        Some((at, end))
    }
}

/// The root span of a process: a POST to `route` served by `service`, lasting `ms` (a
/// range); a new trace.
fn root(
    plan: &mut Plan<'_>,
    run: &mut Run<'_>,
    service: &str,
    route: &str,
    t0: u64,
    ms: (f64, f64),
) -> At {
    let trace = TraceId::from_bytes(plan.rng.id16()).unwrap_or_else(|_| unreachable_trace());
    let end = t0 + plan.jitter(ms.0, ms.1);
    let root = plan.span(
        service,
        &format!("POST {route}"),
        SpanKind::Server,
        trace,
        None,
        t0,
        end,
        vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("http.route", route),
            KeyValue::new("http.response.status_code", 200_i64),
        ],
    );
    run.track(end);
    At { trace, parent: root }
}

/// order placed → payment → inventory reservation → fulfilment → shipping → notification,
/// the shipment fanned out to two consumer groups.
fn checkout(plan: &mut Plan<'_>, run: &mut Run<'_>, t0: u64) {
    let at = root(plan, run, "frontend", "/checkout", t0, (60.0, 140.0));
    let t = t0 + plan.dur(2.0);
    let (_, t) = plan.call(at, "frontend", "cart", "cart.CartService/GetCart", true, t, 8.0);
    let (_, t) = plan.call(at, "frontend", "pricing", "pricing.PricingService/Quote", true, t, 6.0);
    let (orders, _) = plan.call(at, "frontend", "orders", "POST /orders", false, t, 30.0);
    let (message, sent) = plan.send(orders, "orders", "orders.placed", t + plan.dur(10.0));
    // payments
    let Some((hop, start, i)) = run.deliver(plan, sent) else { return };
    let Some((pay, _)) = run.consume(plan, orders, message, hop, start, i, false, 40.0) else {
        return;
    };
    let (_, t) = plan.call(
        pay,
        "payments",
        "fraud",
        "fraud.FraudService/Score",
        true,
        start + plan.dur(1.0),
        6.0,
    );
    let (gateway, t2) =
        plan.call(pay, "payments", "payment-gateway", "POST /v1/charges", false, t, 25.0);
    if run.decisions.step_error {
        let (_, end) =
            plan.internal(gateway, "payment-gateway", "charge card", t + plan.dur(1.0), 20.0);
        plan.fail_last("card declined");
        run.track(end);
        run.failed = true;
        run.faults.push((FaultKind::StepError, "payment-gateway charge card".to_owned()));
        return;
    }
    let (_, end) =
        plan.internal(gateway, "payment-gateway", "charge card", t + plan.dur(1.0), 20.0);
    run.track(end);
    let (message, sent) = plan.send(pay, "payments", "payments.completed", t2);
    // inventory
    let Some((hop, start, i)) = run.deliver(plan, sent) else { return };
    let Some((inv, _)) = run.consume(plan, pay, message, hop, start, i, false, 20.0) else {
        return;
    };
    let (_, t) = plan.call(
        inv,
        "inventory",
        "warehouse",
        "warehouse.Stock/Reserve",
        true,
        start + plan.dur(1.0),
        12.0,
    );
    let (message, sent) = plan.send(inv, "inventory", "inventory.reserved", t);
    // fulfilment
    let Some((hop, start, i)) = run.deliver(plan, sent) else { return };
    let Some((ful, _)) = run.consume(plan, inv, message, hop, start, i, false, 25.0) else {
        return;
    };
    let (_, t) = plan.call(
        ful,
        "fulfilment",
        "warehouse",
        "POST /picklists",
        false,
        start + plan.dur(1.0),
        15.0,
    );
    let (message, sent) = plan.send(ful, "fulfilment", "fulfilment.requested", t);
    // shipping: a batch consumer, starting a trace of its own linked to the message
    let Some((hop, start, i)) = run.deliver(plan, sent) else { return };
    let Some((ship, _)) = run.consume(plan, ful, message, hop, start, i, true, 30.0) else {
        return;
    };
    let (_, t) = plan.call(
        ship,
        "shipping",
        "carrier-gateway",
        "POST /labels",
        false,
        start + plan.dur(1.0),
        20.0,
    );
    let (message, sent) = plan.send(ship, "shipping", "shipments.created", t);
    // fan-out: notifications and the customer timeline, each consuming on its own (a message
    // lost for one group still reaches the other)
    for _ in 0..2 {
        let Some((hop, start, i)) = run.deliver(plan, sent) else { continue };
        let Some((done, _)) = run.consume(plan, ship, message, hop, start, i, false, 10.0) else {
            continue;
        };
        if hop.group == "notifications" {
            let (_, end) = plan.call(
                done,
                "notifications",
                "email",
                "email.Mailer/Send",
                true,
                start + plan.dur(1.0),
                8.0,
            );
            run.track(end);
        }
    }
}

/// A merchant refunds an order: refunds → payments refunds the card → a notification.
fn refund(plan: &mut Plan<'_>, run: &mut Run<'_>, t0: u64) {
    let at = root(plan, run, "merchant-portal", "/refunds", t0, (40.0, 90.0));
    let (refunds, t) = plan.call(
        at,
        "merchant-portal",
        "refunds",
        "POST /refunds",
        false,
        t0 + plan.dur(2.0),
        25.0,
    );
    let (message, sent) =
        plan.send(refunds, "refunds", "refunds.requested", t.saturating_sub(plan.dur(5.0)));
    let Some((hop, start, i)) = run.deliver(plan, sent) else { return };
    let Some((pay, _)) = run.consume(plan, refunds, message, hop, start, i, false, 30.0) else {
        return;
    };
    let (_, end) = plan.internal(pay, "payments", "refund card", start + plan.dur(1.0), 15.0);
    if run.decisions.step_error {
        plan.fail_last("refund rejected by the card network");
        run.track(end);
        run.failed = true;
        run.faults.push((FaultKind::StepError, "payments refund card".to_owned()));
        return;
    }
    let (_, t) = plan.call(pay, "payments", "ledger", "ledger.Ledger/Record", true, end, 8.0);
    let (message, sent) = plan.send(pay, "payments", "notifications.send", t);
    let Some((hop, start, i)) = run.deliver(plan, sent) else { return };
    let Some((note, _)) = run.consume(plan, pay, message, hop, start, i, false, 8.0) else {
        return;
    };
    let (_, end) = plan.call(
        note,
        "notifications",
        "sms",
        "sms.Sender/Send",
        true,
        start + plan.dur(1.0),
        6.0,
    );
    run.track(end);
}

/// A merchant's catalog import: many items sent over minutes, each indexed for search and
/// its images processed.
fn catalog_import(plan: &mut Plan<'_>, run: &mut Run<'_>, t0: u64) {
    let at = root(plan, run, "merchant-portal", "/catalog/imports", t0, (80.0, 150.0));
    let trace = at.trace;
    let (import, t) = plan.call(
        at,
        "merchant-portal",
        "catalog-import",
        "POST /imports",
        false,
        t0 + plan.dur(3.0),
        40.0,
    );
    // The import job runs until its last item is sent: until then its items' parent is
    // missing, so the process cannot look complete between two items.
    let (job, _) = plan.internal(import, "catalog-import", "import job", t, 1.0);
    let job_index = plan.spans.len() - 1;
    let job_at = At { trace, parent: job };
    let items = run.hops.len() / 2;
    let mut t = t;
    let mut job_end = t;
    for _ in 0..items {
        t += plan.jitter(3000.0, 9000.0);
        let (item, parsed) = plan.internal(job_at, "catalog-import", "parse item", t, 30.0);
        run.track(parsed);
        let item_at = At { trace, parent: item };
        let (message, sent) = plan.send(item_at, "catalog-import", "catalog.items", parsed);
        job_end = sent;
        let mut lost = false;
        for _ in 0..2 {
            let Some((hop, start, i)) = run.deliver(plan, sent) else {
                lost = true;
                continue;
            };
            let Some((done, _)) = run.consume(plan, item_at, message, hop, start, i, false, 20.0)
            else {
                lost = true;
                continue;
            };
            let (_, end) = if hop.group == "search-indexer" {
                plan.call(
                    done,
                    "search-indexer",
                    "catalog",
                    "catalog.Catalog/Upsert",
                    true,
                    start + plan.dur(1.0),
                    10.0,
                )
            } else {
                plan.call(
                    done,
                    "media",
                    "catalog",
                    "POST /images",
                    false,
                    start + plan.dur(1.0),
                    30.0,
                )
            };
            run.track(end);
        }
        if lost {
            break;
        }
    }
    let end = job_end + plan.dur(2.0);
    plan.set_end(job_index, end);
    run.track(end);
}

/// A supplier's stock update: the gateway publishes it, inventory applies it.
fn inventory_sync(plan: &mut Plan<'_>, run: &mut Run<'_>, t0: u64) {
    let at = root(plan, run, "supplier-gateway", "/stock-updates", t0, (15.0, 30.0));
    let (sync, t) = plan.call(
        at,
        "supplier-gateway",
        "inventory-sync",
        "POST /sync",
        false,
        t0 + plan.dur(1.0),
        10.0,
    );
    let (message, sent) =
        plan.send(sync, "inventory-sync", "inventory.updates", t.saturating_sub(plan.dur(2.0)));
    let Some((hop, start, i)) = run.deliver(plan, sent) else { return };
    let Some((inv, _)) = run.consume(plan, sync, message, hop, start, i, false, 12.0) else {
        return;
    };
    let (_, end) = plan.call(
        inv,
        "inventory",
        "warehouse",
        "warehouse.Stock/Set",
        true,
        start + plan.dur(1.0),
        6.0,
    );
    run.track(end);
}

fn duration_text(secs: f64) -> String {
    let ms = (secs * 1000.0).round();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "positive ms")]
    let ms = ms.max(1.0) as u64;
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A step whose error fails the process.
const CRITICAL: u8 = 1;
/// A step the process is not complete without.
const TERMINAL: u8 = 2;

/// One process type in the spec file: kind, how it is recognised, owning team, keys, runbook,
/// steps (service, operation, [`CRITICAL`] and [`TERMINAL`] flags), channels and their
/// subscribers.
type TypeSpec = (
    ProcessKind,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static [(&'static str, &'static str, u8)],
    &'static [(&'static str, &'static [&'static str])],
);

/// The spec file of the shop with every duration divided by `speed`.
pub fn spec_toml(speed: f64) -> String {
    let d = |secs: f64| duration_text(secs / speed);
    let mut out = String::from(
        "# Process specs of the simulated shop (docs/specs.md documents the format).\n\
         # Generated by threadline-sim (spec_toml); a test keeps this file equal to it.\n\
         version = 1\n",
    );
    let types: [TypeSpec; 4] = [
        (
            ProcessKind::Checkout,
            "root = { service = \"frontend\", operation = \"POST /checkout\" }",
            "checkout",
            &["order.id", "merchant.id"],
            "https://wiki.example.com/runbooks/checkout",
            &[
                ("orders", "orders.placed publish", 0),
                ("payments", "orders.placed process", 0),
                ("payment-gateway", "charge card", CRITICAL),
                ("inventory", "payments.completed process", 0),
                ("fulfilment", "inventory.reserved process", 0),
                ("shipping", "fulfilment.requested process", 0),
                ("notifications", "shipments.created process", 0),
            ],
            &[
                ("orders.placed", &["payments"]),
                ("payments.completed", &["inventory"]),
                ("inventory.reserved", &["fulfilment"]),
                ("fulfilment.requested", &["shipping"]),
                ("shipments.created", &["notifications", "customer-timeline"]),
            ],
        ),
        (
            ProcessKind::Refund,
            "attribute = { key = \"process.type\", value = \"refund\" }",
            "payments",
            &["refund.id", "order.id"],
            "https://wiki.example.com/runbooks/refund",
            &[("payments", "refunds.requested process", 0), ("payments", "refund card", CRITICAL)],
            &[
                ("refunds.requested", &["payments-refunds"]),
                ("notifications.send", &["notifications"]),
            ],
        ),
        (
            ProcessKind::CatalogImport,
            "root = { service = \"merchant-portal\", operation = \"POST /catalog/imports\" }",
            "catalog",
            &["import.id", "merchant.id"],
            "https://wiki.example.com/runbooks/catalog-import",
            &[
                ("catalog-import", "import job", TERMINAL),
                ("catalog-import", "parse item", 0),
                ("search-indexer", "catalog.items process", 0),
            ],
            &[("catalog.items", &["search-indexer", "media"])],
        ),
        (
            ProcessKind::InventorySync,
            "root = { service = \"supplier-gateway\", operation = \"POST /stock-updates\" }",
            "inventory",
            &["sync.id", "sku"],
            "https://wiki.example.com/runbooks/inventory-sync",
            &[("inventory", "inventory.updates process", 0)],
            &[("inventory.updates", &["inventory-sync-consumers"])],
        ),
    ];
    for (kind, recognise, team, keys, runbook, steps, channels) in types {
        let (sla, stuck) = kind.thresholds();
        let keys: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
        out.push_str(&format!(
            "\n[[process]]\nname = \"{}\"\n{recognise}\nkeys = [{}]\nsla = \"{}\"\nstuck_after = \"{}\"\nidle_timeout = \"{}\"\n\n\
             [process.owner]\nteam = \"{team}\"\npager = \"https://pager.example.com/services/{team}\"\nrunbook = \"{runbook}\"\n",
            kind.name(),
            keys.join(", "),
            d(sla),
            d(stuck),
            d(stuck * 4.0),
        ));
        for (service, operation, flags) in steps.iter() {
            out.push_str(&format!(
                "\n[[process.step]]\nservice = \"{service}\"\noperation = \"{operation}\"\n"
            ));
            if flags & CRITICAL != 0 {
                out.push_str("critical = true\n");
            }
            if flags & TERMINAL != 0 {
                out.push_str("terminal = true\n");
            }
        }
        for (channel, groups) in channels {
            let groups: Vec<String> = groups.iter().map(|g| format!("\"{g}\"")).collect();
            out.push_str(&format!(
                "\n[[process.channel]]\nsystem = \"kafka\"\ndestination = \"{channel}\"\nsubscribers = [{}]\n",
                groups.join(", ")
            ));
        }
    }
    out
}

impl Expectation {
    /// Whether it has anything wrong to find.
    pub fn is_clean(&self) -> bool {
        self.outcome == Outcome::Completed && self.stuck.is_empty() && !self.sla_breached
    }
}
