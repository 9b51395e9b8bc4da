//! The process writer: takes the engine shards' reports, writes changed processes and their
//! events to the process table in one durable transaction per group, and only then
//! publishes the events (each with its position in the durable event log).
//!
//! After a restart the engine is rebuilt by feeding it again (see `lib.rs`); while that
//! recovery runs, the events the engine re-emits are not trusted: instead each recovered
//! process is compared with its stored row, and only transitions the row lacks are logged
//! and published. As an event is published only once its row is stored, no occurrence is
//! announced twice across a crash.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use threadline_core::id::TraceId;
use threadline_engine::engine::{CompletionMode, ProcessState, ProcessView, Waiting};
use threadline_engine::event::Event;
use threadline_storage::processes::{
    ProcessChanges, ProcessRecord, RecordState, StoredEvent, WaitingRecord,
};
use threadline_storage::store::Store;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::engine_task::Report;

/// Reports waiting for the writer, at most; shards wait past it.
pub const REPORT_QUEUE: usize = 64;
/// Events kept for subscribers that fall behind; past it they are told how many they missed.
const EVENT_BUFFER: usize = 16_384;
/// Reports folded into one transaction, at most.
const MAX_GROUP: usize = 1024;
/// Under load, transactions start at most this often: reports arriving meanwhile fold into
/// the next one, so a process changed many times in that span is written once, and each
/// commit's fixed cost (its fsync, the index pages it rewrites) is shared by more changes. It
/// is also the most a published event waits for this reason.
const COMMIT_EVERY: Duration = Duration::from_millis(100);
/// A last commit of fewer process changes than this is not load: the next report is then
/// committed at once (with whatever reports are already queued), so that its events are
/// published without waiting out [`COMMIT_EVERY`] (a completion 20 ms after the previous
/// commit waited 80 ms more). Decided by the last commit, not by the report: under load,
/// the reports that come with each WAL mark are small too.
const FOLD_FROM: usize = 64;

/// Where published events go; subscribers get every event from the moment they subscribe.
#[derive(Debug, Clone)]
pub struct Publisher {
    tx: broadcast::Sender<Arc<StoredEvent>>,
}

impl Publisher {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.tx.subscribe()
    }
}

/// Starts the writer for `shards` shards. With `recovery_mark`, it starts in recovery mode,
/// which ends once every shard has reported that mark.
pub fn spawn(
    store: Arc<Store>,
    shards: usize,
    recovery_mark: Option<u64>,
) -> (mpsc::Sender<Report>, Publisher, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(REPORT_QUEUE);
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let publisher = Publisher { tx: events };
    let task = tokio::spawn(run(rx, store, shards, publisher.clone(), recovery_mark));
    (tx, publisher, task)
}

async fn run(
    mut rx: mpsc::Receiver<Report>,
    store: Arc<Store>,
    shards: usize,
    publisher: Publisher,
    mut recovery_mark: Option<u64>,
) {
    let mut marks: Vec<Option<u64>> = vec![None; shards];
    let mut applied: Option<u64> = None;
    let mut last_commit = tokio::time::Instant::now();
    let mut last_changes = 0;
    let mut closed = false;
    while !closed && let Some(first) = rx.recv().await {
        let load = last_changes >= FOLD_FROM;
        let fold_until =
            if load { last_commit + COMMIT_EVERY } else { tokio::time::Instant::now() };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match tokio::time::timeout_at(fold_until, rx.recv()).await {
                Ok(Some(report)) => group.push(report),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let recovering = recovery_mark.is_some();
        let mut views: HashMap<TraceId, ProcessView> = HashMap::new();
        let mut removed = Vec::new();
        let mut keys = Vec::new();
        let mut events = Vec::new();
        for report in group {
            if let Some(mark) = report.mark
                && let Some(slot) = marks.get_mut(report.shard)
            {
                *slot = Some(slot.map_or(mark, |m| m.max(mark)));
            }
            fold_changes(&mut views, &mut removed, report.changes.views, report.changes.removed);
            keys.extend(report.changes.keys);
            if !recovering {
                events.extend(report.events.iter().map(stored_event));
            }
        }
        let through =
            marks.iter().copied().collect::<Option<Vec<u64>>>().and_then(|m| m.into_iter().min());
        let advanced = through.filter(|t| applied.is_none_or(|a| *t > a));
        let records: Vec<ProcessRecord> = views.values().map(record).collect();
        if recovering {
            for record in &records {
                match store.process(record.id) {
                    Ok(row) => events.extend(missing_transitions(row.as_ref(), record)),
                    Err(e) => {
                        tracing::error!(error = %threadline_core::error::chain(&e), "reading a process row during recovery");
                    }
                }
            }
        }
        last_changes = records.len() + removed.len();
        let changes = ProcessChanges { records, removed, keys, events, applied_seq: advanced };
        let logged = apply_until_done(&store, changes).await;
        last_commit = tokio::time::Instant::now();
        if advanced.is_some() {
            applied = advanced;
        }
        for event in logged {
            // No subscriber is not an error.
            let _ = publisher.tx.send(Arc::new(event));
        }
        if let (Some(mark), Some(done)) = (recovery_mark, applied)
            && done >= mark
        {
            tracing::info!(mark, "recovery complete: the engine is current with the process table");
            recovery_mark = None;
        }
    }
}

/// Applies a group of changes, retrying (with backoff) until the store takes them: a full
/// disk delays the table (and, through backpressure, ingest) but loses nothing.
async fn apply_until_done(store: &Arc<Store>, changes: ProcessChanges) -> Vec<StoredEvent> {
    // Shared with the blocking thread that applies it; a group whose transaction failed (or
    // whose thread panicked) still holds every change, and is applied again.
    let changes = Arc::new(Mutex::new(changes));
    let mut delay = Duration::from_millis(100);
    loop {
        let (store, group) = (Arc::clone(store), Arc::clone(&changes));
        let apply = move || {
            let mut group = group.lock().unwrap_or_else(PoisonError::into_inner);
            store.apply_processes(&mut group)
        };
        match tokio::task::spawn_blocking(apply).await {
            Ok(Ok(logged)) => return logged,
            Ok(Err(e)) => {
                tracing::error!(error = %threadline_core::error::chain(&e), retry_in = ?delay,
                    "writing the process table failed; retrying");
            }
            Err(e) => tracing::error!(error = %e, "the process table writer stopped; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Folds one report's process changes into those of the group so far. Reports come in
/// order, so the latest view of a process wins, and a process folded away after its last
/// view has no row to write: the table applies a group's removals before its rows, and a
/// stale view would bring the folded process back as a second row with its keys.
fn fold_changes(
    views: &mut HashMap<TraceId, ProcessView>,
    removed: &mut Vec<(TraceId, TraceId)>,
    new_views: Vec<ProcessView>,
    new_removed: Vec<(TraceId, TraceId)>,
) {
    for (from, _) in &new_removed {
        views.remove(from);
    }
    removed.extend(new_removed);
    for view in new_views {
        views.insert(view.id, view);
    }
}

fn stored_event(event: &Event) -> StoredEvent {
    StoredEvent {
        seq: 0,
        kind: event.kind.as_str().to_owned(),
        process_id: event.process_id,
        process_type: event.process_type.clone(),
        at: event.at,
        detail: event.detail.clone(),
    }
}

/// The row of a process as the engine sees it now.
pub fn record(view: &ProcessView) -> ProcessRecord {
    ProcessRecord {
        id: view.id,
        process_type: view.process_type.clone(),
        state: match view.state {
            ProcessState::Running => RecordState::Running,
            ProcessState::Completed => RecordState::Completed,
            ProcessState::Failed => RecordState::Failed,
        },
        mode: view.mode.map(|m| CompletionMode::as_str(m).to_owned()),
        stuck: view.stuck,
        sla_breached: view.sla_breached,
        start_nanos: view.start_nanos,
        end_nanos: view.end_nanos,
        last_activity: view.last_activity,
        spans: view.spans,
        error_spans: view.error_spans,
        traces: view.traces.clone(),
        // The engine keeps no keys; they come as changes of their own and the table joins them.
        keys: Vec::new(),
        waiting: view
            .waiting_for
            .iter()
            .map(|w| match w {
                Waiting::Message { system, destination, group, since } => WaitingRecord::Message {
                    system: system.clone(),
                    destination: destination.clone(),
                    group: group.clone(),
                    since: *since,
                },
                Waiting::MissingParent { count } => {
                    WaitingRecord::MissingParent { count: *count as u64 }
                }
                Waiting::Root => WaitingRecord::Root,
            })
            .collect(),
        failure: view.failure.clone(),
        spec_violations: view.spec.as_ref().map(|s| s.violations.clone()),
    }
}

/// The events a recovered process owes: transitions from its stored row (or from nothing)
/// to its state now.
fn missing_transitions(row: Option<&ProcessRecord>, now: &ProcessRecord) -> Vec<StoredEvent> {
    let event = |kind: &str, detail: String| StoredEvent {
        seq: 0,
        kind: kind.to_owned(),
        process_id: now.id,
        process_type: now.process_type.clone(),
        at: now.last_activity,
        detail,
    };
    let mut out = Vec::new();
    let was = row.map(|r| r.state);
    if row.is_none() {
        out.push(event("started", String::new()));
    }
    if was == Some(RecordState::Completed) && now.state == RecordState::Running {
        out.push(event("reopened", String::new()));
    }
    if row.is_none_or(|r| !r.sla_breached) && now.sla_breached {
        out.push(event("sla_breached", String::new()));
    }
    if row.is_none_or(|r| !r.stuck) && now.stuck {
        out.push(event("stuck", String::new()));
    }
    if was != Some(now.state) {
        match now.state {
            RecordState::Completed => {
                out.push(event("completed", now.mode.clone().unwrap_or_default()));
            }
            RecordState::Failed => {
                out.push(event("failed", now.failure.clone().unwrap_or_default()));
            }
            RecordState::Running => {}
        }
    }
    let violated = |r: &ProcessRecord| r.spec_violations.as_ref().is_some_and(|v| !v.is_empty());
    if violated(now) && !row.is_some_and(violated) {
        out.push(event(
            "spec_violated",
            now.spec_violations.as_ref().map(|v| v.join("; ")).unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(n: u8, spans: u32) -> ProcessView {
        let id = TraceId::from_bytes([n; 16]).expect("a valid id");
        ProcessView {
            id,
            process_type: "checkout".into(),
            state: ProcessState::Running,
            mode: None,
            stuck: false,
            sla_breached: false,
            start_nanos: 1,
            end_nanos: 2,
            last_activity: 2,
            spans,
            error_spans: 0,
            traces: vec![id],
            waiting_for: Vec::new(),
            failure: None,
            spec: None,
        }
    }

    type Fold = (TraceId, TraceId);

    fn folded(reports: Vec<(Vec<ProcessView>, Vec<Fold>)>) -> (Vec<(u8, u32)>, usize) {
        let (mut views, mut removed) = (HashMap::new(), Vec::new());
        for (v, r) in reports {
            fold_changes(&mut views, &mut removed, v, r);
        }
        let mut out: Vec<(u8, u32)> =
            views.values().map(|v| (v.id.as_bytes()[0], v.spans)).collect();
        out.sort_unstable();
        (out, removed.len())
    }

    #[test]
    fn a_process_folded_away_after_its_view_leaves_no_row_to_write() {
        let (x, y) = (view(1, 3), view(2, 5));
        let gone = vec![(x.id, y.id)];
        // Seen, then folded into another in a later report of the same group.
        assert_eq!(
            folded(vec![(vec![x.clone()], Vec::new()), (vec![y.clone()], gone.clone())]),
            (vec![(2, 5)], 1)
        );
        // The latest view wins.
        assert_eq!(
            folded(vec![(vec![view(1, 3)], Vec::new()), (vec![view(1, 4)], Vec::new())]),
            (vec![(1, 4)], 0)
        );
        // A view after the removal is newer than it, and stays.
        assert_eq!(folded(vec![(vec![y], gone), (vec![x], Vec::new())]), (vec![(1, 3), (2, 5)], 1));
    }
}
