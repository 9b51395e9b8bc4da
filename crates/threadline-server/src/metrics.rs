//! `GET /metrics`: Prometheus text exposition (format 0.0.4) of process types, operations,
//! calls, channels, and Threadline's own ingest, storage and engine health.
//!
//! Label cardinality is bounded: at most [`MAX_SERIES`] process types, operations, call
//! edges and channel groups each (the busiest; the rest are summed under `other`), on top
//! of the engine's own cap on operation names.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use threadline_engine::engine::{Graph, NamedTypeStats};
use threadline_engine::sketch::Quantiles;

/// Series per family, at most.
pub const MAX_SERIES: usize = 200;

/// Histogram bounds of process durations, in seconds.
const DURATION_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Reads one counter of a process type.
type TypeCounter = fn(&NamedTypeStats) -> u64;

/// What `/metrics` reports about Threadline itself.
#[derive(Debug, Default)]
pub struct SelfMetrics {
    pub accepted_spans: u64,
    pub rejected_spans: u64,
    pub refused_requests: u64,
    pub failed_requests: u64,
    pub queue_depth_spans: u64,
    pub queue_capacity_spans: u64,
    pub store: threadline_storage::StoreStats,
    pub engine_processes: u64,
    pub engine_running: u64,
    pub engine_spans: u64,
    pub engine_untracked_spans: u64,
    pub engine_evicted_finished: u64,
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if inner.is_empty() { String::new() } else { format!("{{{}}}", inner.join(",")) }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, pairs: &[(&str, &str)], value: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{} {value}", labels(pairs));
}

#[allow(clippy::cast_precision_loss, reason = "nanoseconds to seconds for display")]
fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// Keeps the `MAX_SERIES` items with the largest weight; the rest are folded into one.
fn bounded<T>(
    mut items: Vec<T>,
    weight: impl Fn(&T) -> u64,
    fold: impl Fn(Vec<T>) -> Option<T>,
) -> Vec<T> {
    if items.len() <= MAX_SERIES {
        return items;
    }
    items.sort_by_key(|item| std::cmp::Reverse(weight(item)));
    let rest = items.split_off(MAX_SERIES - 1);
    items.extend(fold(rest));
    items
}

fn quantile_samples(
    out: &mut String,
    name: &str,
    base: &[(&str, &str)],
    q: &Quantiles,
    count: u64,
) {
    for (quantile, value) in [("0.5", q.p50), ("0.95", q.p95), ("0.99", q.p99)] {
        if let Some(v) = value {
            let mut pairs = base.to_vec();
            pairs.push(("quantile", quantile));
            sample(out, name, &pairs, seconds(v));
        }
    }
    sample(out, &format!("{name}_count"), base, count);
}

/// The whole exposition.
pub fn render(types: Vec<NamedTypeStats>, graph: &Graph, me: &SelfMetrics) -> String {
    let mut out = String::with_capacity(16 * 1024);
    render_types(&mut out, types);
    render_graph(&mut out, graph);
    render_self(&mut out, me);
    out
}

fn render_types(out: &mut String, types: Vec<NamedTypeStats>) {
    let mut merged: BTreeMap<String, NamedTypeStats> = BTreeMap::new();
    for item in types {
        let entry = merged.entry(item.name.clone()).or_insert_with(|| NamedTypeStats {
            name: item.name.clone(),
            ..NamedTypeStats::default()
        });
        entry.stats.merge(&item.stats);
        entry.in_flight += item.in_flight;
        entry.stuck += item.stuck;
    }
    let types = bounded(
        merged.into_values().collect(),
        |t| t.stats.started,
        |rest| {
            let mut other = NamedTypeStats { name: "other".into(), ..NamedTypeStats::default() };
            for t in rest {
                other.stats.merge(&t.stats);
                other.in_flight += t.in_flight;
                other.stuck += t.stuck;
            }
            Some(other)
        },
    );
    let counters: [(&str, &str, TypeCounter); 7] = [
        ("threadline_processes_started_total", "Processes started.", |t| t.stats.started),
        ("threadline_processes_completed_total", "Processes completed.", |t| t.stats.completed),
        ("threadline_processes_failed_total", "Processes failed.", |t| t.stats.failed),
        ("threadline_processes_sla_breached_total", "SLA breaches.", |t| t.stats.sla_breached),
        ("threadline_processes_stuck_total", "Processes flagged stuck.", |t| t.stats.stuck),
        (
            "threadline_processes_spec_violated_total",
            "Completions that violated their spec.",
            |t| t.stats.spec_violated,
        ),
        (
            "threadline_processes_reopened_total",
            "Completed processes reopened by late spans.",
            |t| t.stats.reopened,
        ),
    ];
    for (name, help, value) in counters {
        family(out, name, "counter", help);
        for t in &types {
            sample(out, name, &[("type", &t.name)], value(t));
        }
    }
    family(out, "threadline_processes_in_flight", "gauge", "Processes running now.");
    for t in &types {
        sample(out, "threadline_processes_in_flight", &[("type", &t.name)], t.in_flight);
    }
    family(out, "threadline_processes_stuck", "gauge", "Processes flagged stuck now.");
    for t in &types {
        sample(out, "threadline_processes_stuck", &[("type", &t.name)], t.stuck);
    }
    let name = "threadline_process_duration_seconds";
    family(out, name, "histogram", "Durations of completed processes.");
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "bounds")]
    let bounds: Vec<u64> = DURATION_BOUNDS.iter().map(|s| (s * 1e9) as u64).collect();
    for t in &types {
        let cumulative = t.stats.durations.cumulative(&bounds);
        for (le, count) in DURATION_BOUNDS.iter().zip(cumulative) {
            let le = le.to_string();
            sample(out, &format!("{name}_bucket"), &[("type", &t.name), ("le", &le)], count);
        }
        let count = t.stats.durations.count();
        sample(out, &format!("{name}_bucket"), &[("type", &t.name), ("le", "+Inf")], count);
        sample(out, &format!("{name}_sum"), &[("type", &t.name)], seconds(t.stats.durations.sum()));
        sample(out, &format!("{name}_count"), &[("type", &t.name)], count);
    }
}

fn render_graph(out: &mut String, graph: &Graph) {
    let operations = bounded(
        graph.operations.clone(),
        |o| o.count,
        |rest| {
            let mut other = rest.first()?.clone();
            other.service = "other".into();
            other.operation = "other".into();
            other.count = rest.iter().map(|o| o.count).sum();
            other.errors = rest.iter().map(|o| o.errors).sum();
            other.durations = Quantiles::default();
            Some(other)
        },
    );
    family(out, "threadline_operation_spans_total", "counter", "Spans per service and operation.");
    for o in &operations {
        sample(
            out,
            "threadline_operation_spans_total",
            &[("service", &o.service), ("operation", &o.operation)],
            o.count,
        );
    }
    family(out, "threadline_operation_errors_total", "counter", "Spans with error status.");
    for o in &operations {
        sample(
            out,
            "threadline_operation_errors_total",
            &[("service", &o.service), ("operation", &o.operation)],
            o.errors,
        );
    }
    let name = "threadline_operation_duration_seconds";
    family(out, name, "summary", "Span durations per service and operation.");
    for o in &operations {
        quantile_samples(
            out,
            name,
            &[("service", &o.service), ("operation", &o.operation)],
            &o.durations,
            o.count,
        );
    }

    let calls = bounded(
        graph.calls.clone(),
        |c| c.calls,
        |rest| {
            let mut other = rest.first()?.clone();
            other.caller = "other".into();
            other.callee = "other".into();
            other.calls = rest.iter().map(|c| c.calls).sum();
            other.errors = rest.iter().map(|c| c.errors).sum();
            other.durations = Quantiles::default();
            Some(other)
        },
    );
    family(out, "threadline_calls_total", "counter", "Synchronous calls between services.");
    for c in &calls {
        sample(
            out,
            "threadline_calls_total",
            &[("caller", &c.caller), ("callee", &c.callee)],
            c.calls,
        );
    }
    family(out, "threadline_call_errors_total", "counter", "Calls that failed.");
    for c in &calls {
        sample(
            out,
            "threadline_call_errors_total",
            &[("caller", &c.caller), ("callee", &c.callee)],
            c.errors,
        );
    }

    let channels: Vec<_> = graph.channels.iter().take(MAX_SERIES).collect();
    family(out, "threadline_channel_messages_total", "counter", "Messages sent per channel.");
    for c in &channels {
        sample(
            out,
            "threadline_channel_messages_total",
            &[("system", &c.system), ("destination", &c.destination)],
            c.messages,
        );
    }
    family(
        out,
        "threadline_channel_consumed_total",
        "counter",
        "Messages processed per consumer group.",
    );
    let name = "threadline_channel_wait_seconds";
    let mut waits = String::new();
    family(
        &mut waits,
        name,
        "summary",
        "Time messages waited in the channel before a group processed them.",
    );
    for c in &channels {
        for g in c.groups.iter().take(MAX_SERIES) {
            let base = [
                ("system", c.system.as_str()),
                ("destination", c.destination.as_str()),
                ("group", g.group.as_str()),
            ];
            sample(out, "threadline_channel_consumed_total", &base, g.consumed);
            quantile_samples(&mut waits, name, &base, &g.waits, g.consumed);
        }
    }
    out.push_str(&waits);
}

fn render_self(out: &mut String, me: &SelfMetrics) {
    let counters = [
        (
            "threadline_ingest_accepted_spans_total",
            "Spans accepted by the receivers.",
            me.accepted_spans,
        ),
        (
            "threadline_ingest_rejected_spans_total",
            "Spans rejected as invalid (partial success).",
            me.rejected_spans,
        ),
        (
            "threadline_ingest_refused_requests_total",
            "Requests refused for overload (429/503).",
            me.refused_requests,
        ),
        (
            "threadline_ingest_failed_requests_total",
            "Requests that failed after acceptance (storage errors).",
            me.failed_requests,
        ),
        (
            "threadline_store_deleted_blocks_total",
            "Blocks deleted by retention.",
            me.store.deleted_blocks,
        ),
        (
            "threadline_store_compacted_blocks_total",
            "Small blocks merged by compaction.",
            me.store.compacted_blocks,
        ),
        ("threadline_store_read_errors_total", "Block reads that failed.", me.store.read_errors),
        (
            "threadline_process_table_commits_total",
            "Process table transactions committed.",
            me.store.process_commits,
        ),
        (
            "threadline_process_table_rows_written_total",
            "Process rows written (new rows and rewrites).",
            me.store.process_rows_written,
        ),
        (
            "threadline_process_table_rows_created_total",
            "Process rows written for the first time.",
            me.store.process_rows_created,
        ),
        ("threadline_engine_spans_total", "Spans taken by the engine.", me.engine_spans),
        (
            "threadline_engine_untracked_spans_total",
            "Spans stored but not tracked (in-flight cap).",
            me.engine_untracked_spans,
        ),
        (
            "threadline_engine_evicted_finished_total",
            "Finished processes dropped early to make room.",
            me.engine_evicted_finished,
        ),
    ];
    for (name, help, value) in counters {
        family(out, name, "counter", help);
        sample(out, name, &[], value);
    }
    let gauges = [
        (
            "threadline_ingest_queue_depth_spans",
            "Spans waiting in the ingest queue.",
            me.queue_depth_spans,
        ),
        (
            "threadline_ingest_queue_capacity_spans",
            "Capacity of the ingest queue, in spans.",
            me.queue_capacity_spans,
        ),
        (
            "threadline_store_head_spans",
            "Spans not yet in a block (memory and WAL).",
            me.store.head_spans,
        ),
        ("threadline_store_blocks", "Span blocks stored.", me.store.blocks),
        (
            "threadline_store_trace_filter_bytes",
            "Memory taken by the span blocks' trace filters.",
            me.store.trace_filter_bytes,
        ),
        ("threadline_store_block_spans", "Spans in blocks.", me.store.block_spans),
        ("threadline_store_block_bytes", "Bytes of span blocks.", me.store.block_bytes),
        ("threadline_store_wal_segments", "WAL segments on disk.", me.store.wal_segments),
        ("threadline_store_wal_bytes", "Bytes of WAL on disk.", me.store.wal_bytes),
        (
            "threadline_process_index_runs",
            "Sorted runs in the process table's id, key and trace indexes.",
            me.store.process_index_runs,
        ),
        (
            "threadline_process_index_filter_bytes",
            "Memory taken by the filters of the process table's sorted runs.",
            me.store.process_index_filter_bytes,
        ),
        (
            "threadline_store_write_failing",
            "1 while storage writes fail (ingest answers 503).",
            u64::from(me.store.last_error.is_some()),
        ),
        ("threadline_engine_processes", "Processes held by the engine.", me.engine_processes),
        ("threadline_engine_running", "Processes running.", me.engine_running),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        sample(out, name, &[], value);
    }
}
