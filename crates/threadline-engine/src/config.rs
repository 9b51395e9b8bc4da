//! How the engine judges processes: timeouts per process type, and its own limits.
//! Times are nanoseconds, like span timestamps and the engine's clock.

/// Nanoseconds in a second, for readable configuration.
pub const SECOND: u64 = 1_000_000_000;
/// Nanoseconds in a millisecond.
pub const MILLISECOND: u64 = 1_000_000;

/// Timeouts of one process type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypePolicy {
    /// End-to-end SLA: a process still running this long after it started is flagged
    /// `sla_breached` at that moment.
    pub sla_nanos: Option<u64>,
    /// A process waiting this long on the same message (or, when nothing is pending, with no
    /// activity) is flagged `stuck`.
    pub stuck_after_nanos: u64,
    /// With no new telemetry for this long, a process whose structure is incomplete (missing
    /// parents, partial instrumentation) completes by quiescence.
    pub idle_timeout_nanos: u64,
}

impl Default for TypePolicy {
    fn default() -> Self {
        Self { sla_nanos: None, stuck_after_nanos: 60 * SECOND, idle_timeout_nanos: 300 * SECOND }
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Policy of processes whose type has none of its own.
    pub default_policy: TypePolicy,
    /// Once a process is structurally complete, it must stay so this long before `completed`
    /// is declared: spans exported in the same breath (one SDK batch) may still be in flight.
    pub settle_nanos: u64,
    /// A trace first seen through a non-root span may be a consumer trace about to join its
    /// producer's process through a link on its root; its `started` waits this long for that.
    pub join_window_nanos: u64,
    /// Most processes held at once; past it the oldest is evicted (see `docs/engine.md`).
    pub max_in_flight: usize,
    /// How long a finished process is kept, so late spans reopen it rather than start anew.
    pub retain_finished_nanos: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            default_policy: TypePolicy::default(),
            settle_nanos: 20 * MILLISECOND,
            join_window_nanos: 2 * SECOND,
            max_in_flight: 1_000_000,
            retain_finished_nanos: 60 * SECOND,
        }
    }
}
