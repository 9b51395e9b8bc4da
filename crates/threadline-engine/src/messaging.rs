//! Reading the OpenTelemetry messaging conventions off a span: is it a producer or a
//! consumer, on which channel, for which consumer group. Current and deprecated attribute
//! names are both accepted.

use threadline_core::span::{Span, SpanKind};
use threadline_core::value::{AnyValue, find};

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

const SYSTEM: &[&str] = &["messaging.system"];
const DESTINATION: &[&str] = &[
    "messaging.destination.name",
    // Deprecated names still sent by older instrumentation.
    "messaging.destination",
    "messaging.kafka.destination",
    "messaging.rabbitmq.destination",
];
const OPERATION: &[&str] = &["messaging.operation.type", "messaging.operation"];
const GROUP: &[&str] = &[
    "messaging.consumer.group.name",
    "messaging.kafka.consumer.group",
    "messaging.kafka.consumer_group",
    "messaging.destination.subscription.name",
    "messaging.eventhubs.consumer.group",
];

fn string_attribute<'a>(span: &'a Span, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| match find(&span.attributes, name) {
        Some(AnyValue::String(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    })
}

/// The messaging role of a span.
pub fn role(span: &Span) -> Role<'_> {
    // Only these kinds can play a messaging role: skip the attribute scans for the rest.
    if !matches!(span.kind, SpanKind::Producer | SpanKind::Consumer | SpanKind::Client) {
        return Role::None;
    }
    let Some(destination) = string_attribute(span, DESTINATION) else { return Role::None };
    let system = string_attribute(span, SYSTEM).unwrap_or("");
    let channel = Channel { system, destination };
    let operation = string_attribute(span, OPERATION).unwrap_or("");
    match span.kind {
        SpanKind::Producer => {
            if matches!(operation, "send" | "publish") && !span.links.is_empty() {
                Role::BatchSend
            } else {
                Role::Producer { channel }
            }
        }
        SpanKind::Consumer => Role::Consumer { channel, group: group(span) },
        SpanKind::Client if matches!(operation, "receive" | "settle" | "process") => {
            Role::Consumer { channel, group: group(span) }
        }
        _ => Role::None,
    }
}

/// The consumer group of a consumer span; the consuming service when none is named.
fn group(span: &Span) -> &str {
    string_attribute(span, GROUP).unwrap_or_else(|| span.service_name())
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
