//! Domain types shared by every Threadline crate: validated trace and span ids, spans with
//! their kind, status, attributes, events, links, resource and scope.
//!
//! This crate does no IO, has no async code and no serialization format: wire formats live in
//! `threadline-proto`, API shapes in `threadline-api-types`.

pub mod error;
pub mod hash;
pub mod id;
pub mod span;
pub mod value;
