//! What the engine tells the world: one event per occurrence, in order of occurrence.

use threadline_core::id::TraceId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub process_id: TraceId,
    /// The process type's name.
    pub process_type: String,
    /// Engine time of the occurrence (ns): a timer's due time, or the arrival that caused it.
    pub at: u64,
    /// Why: the waiting location of a `stuck`, the reason of a `failed`, the mode of a
    /// `completed`.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Started,
    Completed,
    Failed,
    SlaBreached,
    Stuck,
    SpecViolated,
    Reopened,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Completed => "completed",
            EventKind::Failed => "failed",
            EventKind::SlaBreached => "sla_breached",
            EventKind::Stuck => "stuck",
            EventKind::SpecViolated => "spec_violated",
            EventKind::Reopened => "reopened",
        }
    }
}
