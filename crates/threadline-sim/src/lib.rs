//! A simulated e-commerce system: 25 services and 10 Kafka channels with consumer groups,
//! emitting spans exactly as instrumented services would (resource `service.name`, the
//! OpenTelemetry messaging conventions, W3C baggage copied to attributes for business keys,
//! batch consumers that start a new trace with a span link), with faults injected on purpose
//! at configurable rates. Every fault is recorded with what it must lead to
//! ([`Expectation`]), so a test can check that Threadline finds exactly the faults injected.
//!
//! [`Shop`] is deterministic: the same config, seed and start time give the same spans, ids
//! and faults. Time is the caller's (Unix nanoseconds); `speed` divides every simulated
//! duration, so a test can run minutes of shop life in seconds. [`Shop::spec_toml`] is the spec
//! file matching a speed (`examples/shop/specs.toml` is the one for speed 1).

mod drive;
mod load;
mod otlp;
mod rng;
mod send;
mod shop;

pub use drive::{DriveStats, drive};
pub use load::{LoadConfig, LoadReport};
pub use otlp::request;

/// Runs a load test (see [`LoadConfig`]).
pub use load::run as load;
pub use send::{ExportError, Exporter, Protocol};
pub use shop::{
    CHANNELS, Expectation, Fault, FaultKind, FaultRates, Outcome, ProcessKind, SERVICES, Shop,
    ShopConfig, spec_toml,
};
