//! Reading the OpenTelemetry messaging conventions off a span: is it a producer or a
//! consumer, on which channel, for which consumer group. Current and deprecated attribute
//! names are both accepted.

use threadline_core::span::{Span, SpanKind};
use threadline_core::value::AnyValue;

/// What a span says about messaging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role<'a> {
    /// Sends one message (PRODUCER `send`/`create`/`publish`): its span id identifies it.
    Producer {
        channel: Channel<'a>,
    },
    /// A batch `send` whose messages are its linked `create` spans: not a message itself.
    BatchSend,
    /// Processes or receives messages (CONSUMER, or CLIENT `receive`/`settle`).
    Consumer {
        channel: Channel<'a>,
        group: &'a str,
    },
    None,
}

/// A channel: `messaging.system` + `messaging.destination.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Channel<'a> {
    pub system: &'a str,
    pub destination: &'a str,
}

/// The messaging attributes a role is read from, each under its current name and the
/// deprecated ones older instrumentation still sends, in order of preference; all begin with
/// `messaging.`, which [`Found::read`] strips before matching.
#[derive(Default)]
struct Found<'a> {
    /// `system`.
    system: Slot<'a>,
    /// `destination.name`, `destination`, `kafka.destination`, `rabbitmq.destination`.
    destination: [Slot<'a>; 4],
    /// `operation.type`, `operation`.
    operation: [Slot<'a>; 2],
    /// `consumer.group.name`, `kafka.consumer.group`, `kafka.consumer_group`,
    /// `destination.subscription.name`, `eventhubs.consumer.group`.
    group: [Slot<'a>; 5],
}

/// One attribute name's first occurrence: `None` when absent, `Some(None)` when its value is
/// not a non-empty string (then the next name in order of preference is read).
type Slot<'a> = Option<Option<&'a str>>;

impl<'a> Found<'a> {
    /// Reads a span's attributes in one pass.
    fn read(span: &'a Span) -> Self {
        let mut found = Found::default();
        for kv in &span.attributes {
            let Some(name) = kv.key.strip_prefix("messaging.") else { continue };
            let slot = match name {
                "system" => &mut found.system,
                "destination.name" => &mut found.destination[0],
                "destination" => &mut found.destination[1],
                "kafka.destination" => &mut found.destination[2],
                "rabbitmq.destination" => &mut found.destination[3],
                "operation.type" => &mut found.operation[0],
                "operation" => &mut found.operation[1],
                "consumer.group.name" => &mut found.group[0],
                "kafka.consumer.group" => &mut found.group[1],
                "kafka.consumer_group" => &mut found.group[2],
                "destination.subscription.name" => &mut found.group[3],
                "eventhubs.consumer.group" => &mut found.group[4],
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(match &kv.value {
                    AnyValue::String(s) if !s.is_empty() => Some(s.as_str()),
                    _ => None,
                });
            }
        }
        found
    }
}

/// The first name in order of preference with a non-empty string value.
fn first<'a>(slots: &[Slot<'a>]) -> Option<&'a str> {
    slots.iter().find_map(|slot| slot.flatten())
}

/// The messaging role of a span.
pub fn role(span: &Span) -> Role<'_> {
    // Only these kinds can play a messaging role: skip the attribute scan for the rest.
    if !matches!(span.kind, SpanKind::Producer | SpanKind::Consumer | SpanKind::Client) {
        return Role::None;
    }
    let found = Found::read(span);
    let Some(destination) = first(&found.destination) else { return Role::None };
    let system = found.system.flatten().unwrap_or("");
    let channel = Channel { system, destination };
    let operation = first(&found.operation).unwrap_or("");
    // The consumer group of a consumer span; the consuming service when none is named.
    let group = || first(&found.group).unwrap_or_else(|| span.service_name());
    match span.kind {
        SpanKind::Producer => {
            if matches!(operation, "send" | "publish") && !span.links.is_empty() {
                Role::BatchSend
            } else {
                Role::Producer { channel }
            }
        }
        SpanKind::Consumer => Role::Consumer { channel, group: group() },
        SpanKind::Client if matches!(operation, "receive" | "settle" | "process") => {
            Role::Consumer { channel, group: group() }
        }
        _ => Role::None,
    }
}

/// Whether a destination is a dead-letter channel by its name (`orders.dlq`, `orders-DLT`,
/// `dead-letter.orders`, ...).
pub fn is_dead_letter(destination: &str) -> bool {
    let lower = destination.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    words.iter().any(|w| matches!(*w, "dlq" | "dlt" | "deadletter"))
        || lower.contains("dead-letter")
        || lower.contains("dead_letter")
        || lower.contains("dead.letter")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(kind: SpanKind, attributes: &[(&str, AnyValue)]) -> Span {
        use threadline_core::id::{SpanId, TraceId};
        use threadline_core::span::Resource;
        use threadline_core::value::KeyValue;
        Span {
            trace_id: TraceId::from_bytes([1; 16]).unwrap(),
            span_id: SpanId::from_bytes([2; 8]).unwrap(),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: "op".into(),
            kind,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: attributes.iter().map(|(k, v)| KeyValue::new(*k, v.clone())).collect(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: threadline_core::span::Status::default(),
            resource: std::sync::Arc::new(Resource {
                attributes: vec![KeyValue::new("service.name", "billing")],
                ..Resource::default()
            }),
            scope: std::sync::Arc::default(),
        }
    }

    fn text(s: &str) -> AnyValue {
        AnyValue::String(s.into())
    }

    #[test]
    fn roles_read_current_names_before_deprecated_ones_in_any_order() {
        let consumer = span(
            SpanKind::Consumer,
            &[
                ("messaging.kafka.consumer.group", text("old-group")),
                ("messaging.destination", text("old-orders")),
                ("messaging.system", text("kafka")),
                ("messaging.destination.name", text("orders")),
                ("messaging.consumer.group.name", text("payments")),
            ],
        );
        let channel = Channel { system: "kafka", destination: "orders" };
        assert_eq!(role(&consumer), Role::Consumer { channel, group: "payments" });

        // Deprecated names alone; an empty or non-string value falls through to the next name.
        let consumer = span(
            SpanKind::Consumer,
            &[
                ("messaging.destination.name", text("")),
                ("messaging.rabbitmq.destination", text("refunds")),
                ("messaging.consumer.group.name", AnyValue::Int(7)),
                ("messaging.eventhubs.consumer.group", text("ledger")),
            ],
        );
        let channel = Channel { system: "", destination: "refunds" };
        assert_eq!(role(&consumer), Role::Consumer { channel, group: "ledger" });

        // No group named: the consuming service's name.
        let consumer = span(SpanKind::Consumer, &[("messaging.destination", text("orders"))]);
        let channel = Channel { system: "", destination: "orders" };
        assert_eq!(role(&consumer), Role::Consumer { channel, group: "billing" });

        // The first occurrence of a repeated name counts, as a lookup by name reads it.
        let producer = span(
            SpanKind::Producer,
            &[("messaging.destination.name", text("a")), ("messaging.destination.name", text("b"))],
        );
        let channel = Channel { system: "", destination: "a" };
        assert_eq!(role(&producer), Role::Producer { channel });
    }

    #[test]
    fn roles_by_kind_and_operation() {
        let attributes = |operation: &str| {
            [
                ("messaging.destination.name", text("orders")),
                ("messaging.operation", text(operation)),
            ]
        };
        let channel = Channel { system: "", destination: "orders" };
        let receive = span(SpanKind::Client, &attributes("receive"));
        assert_eq!(role(&receive), Role::Consumer { channel, group: "billing" });
        assert_eq!(role(&span(SpanKind::Client, &attributes("send"))), Role::None);
        assert_eq!(role(&span(SpanKind::Server, &attributes("process"))), Role::None);
        assert_eq!(role(&span(SpanKind::Internal, &attributes("process"))), Role::None);
        let not_messaging = span(SpanKind::Producer, &[("destination.name", text("orders"))]);
        assert_eq!(role(&not_messaging), Role::None);
    }

    #[test]
    fn dead_letter_names() {
        for name in ["orders.dlq", "orders-DLT", "dead-letter.orders", "DLQ", "payments_deadletter"]
        {
            assert!(is_dead_letter(name), "{name}");
        }
        assert!(is_dead_letter("x.deadletter"));
        for name in ["orders", "dlqueue-metrics", "idle"] {
            assert!(!is_dead_letter(name), "{name}");
        }
    }
}
