//! Test utilities shared by every crate's tests and benchmarks, so they are not copied per
//! test: generators of realistic telemetry in each wire format ([`generate`]) and a harness
//! that runs the real `threadline` binary on loopback ports ([`server`]).

pub mod arbitrary;
pub mod generate;
pub mod otlp;
pub mod python;
pub mod server;
pub mod spans;
pub mod sse;
