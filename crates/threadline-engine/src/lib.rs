//! The process engine: turns a stream of spans into the live state of every distributed
//! process (see the Concepts and Process lifecycle sections of the product brief).
//!
//! [`engine::Engine`] is a pure, deterministic state machine over `(spans, time)`: it never
//! reads a clock. Callers pass the current time to [`engine::Engine::ingest`] and
//! [`engine::Engine::advance`]; timers (settle window, SLA deadline, stuck-after, idle
//! timeout) fire inside `advance` at their exact due time, so tests run on simulated time,
//! instantly and exactly. Events come out in order of occurrence.
//!
//! One `Engine` is one shard: it owns the processes routed to it and knows nothing of
//! storage, HTTP or files.

pub mod config;
pub mod critical_path;
pub mod engine;
pub mod event;
pub mod keys;
pub mod messaging;
mod process;
pub mod sharded;
pub mod sketch;
mod slab;
pub mod stats;
mod timers;
