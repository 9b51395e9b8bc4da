//! Alerts: rules over the published (durably stored) events, delivered to sinks.
//!
//! A per-process rule fires once per process and event kind (repeats are de-duplicated while
//! it fires); `stuck` and `sla_breached` alerts resolve when the process ends or reopens, with
//! a resolved notification; `failed`, `spec_violated` and `reopened` alerts are one-shot. A
//! rate rule fires when at least `count` events of a kind happened within `window` for a
//! type, and resolves when the count falls below. Each sink has a bounded queue and a worker
//! that POSTs with retries and exponential backoff; the `log` sink writes a log line.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use threadline_config::{AlertRule, Sink};
use threadline_storage::processes::StoredEvent;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Notifications kept for `GET /api/v1/alerts`, at most (the newest).
const LOG_CAPACITY: usize = 1000;

/// The newest notifications of every rule, whatever their sinks, for the API and the UI.
#[derive(Debug, Clone, Default)]
pub struct AlertLog {
    inner: Arc<std::sync::Mutex<Logged>>,
}

/// The last sequence number handed out, and the notifications kept with theirs.
type Logged = (u64, VecDeque<(u64, Notification)>);

impl AlertLog {
    fn record(&self, n: &Notification) {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (seq, log) = &mut *guard;
        *seq += 1;
        log.push_back((*seq, n.clone()));
        if log.len() > LOG_CAPACITY {
            log.pop_front();
        }
    }

    /// The newest `limit` notifications with their sequence numbers, newest first.
    pub fn recent(&self, limit: usize) -> Vec<(u64, Notification)> {
        let guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.1.iter().rev().take(limit).cloned().collect()
    }
}

/// Notifications waiting per sink, at most; past it the oldest waiting one is dropped and
/// counted.
const SINK_QUEUE: usize = 1024;
const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub rule: String,
    pub status: &'static str,
    pub process_type: String,
    /// Per-process alerts only.
    pub process_id: Option<String>,
    pub event: String,
    pub starts_at: u64,
    pub ends_at: Option<u64>,
    pub summary: String,
}

/// RFC 3339 in UTC with nanoseconds, from Unix nanoseconds.
fn rfc3339(nanos: u64) -> String {
    let secs = i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        nanos % 1_000_000_000
    )
}

/// The Alertmanager `/api/v2/alerts` body for one notification.
fn alertmanager_body(n: &Notification) -> Value {
    let mut labels =
        json!({ "alertname": n.rule, "process_type": n.process_type, "event": n.event });
    if let Some(id) = &n.process_id {
        labels["process_id"] = json!(id);
    }
    let mut alert = json!({
        "labels": labels,
        "annotations": { "summary": n.summary },
        "startsAt": rfc3339(n.starts_at),
    });
    if let Some(id) = &n.process_id {
        alert["generatorURL"] = json!(format!("/api/v1/processes/{id}"));
    }
    if let Some(end) = n.ends_at {
        alert["endsAt"] = json!(rfc3339(end));
    }
    json!([alert])
}

fn webhook_body(n: &Notification) -> Value {
    json!({
        "status": n.status,
        "rule": n.rule,
        "processType": n.process_type,
        "processId": n.process_id,
        "event": n.event,
        "startsAt": rfc3339(n.starts_at),
        "endsAt": n.ends_at.map(rfc3339),
        "summary": n.summary,
    })
}

/// A sink's queue: bounded, dropping the oldest when full.
#[derive(Debug, Clone)]
struct Queue {
    tx: mpsc::Sender<Notification>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

fn start_sink(sink: &Sink, stop: CancellationToken) -> Queue {
    let (tx, mut rx) = mpsc::channel::<Notification>(SINK_QUEUE);
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (kind, url, name) =
        (sink.kind.clone(), sink.url.clone().unwrap_or_default(), sink.name.clone());
    tokio::spawn(async move {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        loop {
            let notification = tokio::select! {
                () = stop.cancelled() => return,
                n = rx.recv() => match n { Some(n) => n, None => return },
            };
            if kind == "log" {
                tracing::warn!(target: "threadline::alert", rule = %notification.rule, status = notification.status,
                    process_type = %notification.process_type, process_id = ?notification.process_id,
                    event = %notification.event, "{}", notification.summary);
                continue;
            }
            let body = if kind == "alertmanager" {
                alertmanager_body(&notification)
            } else {
                webhook_body(&notification)
            };
            let mut delay = Duration::from_millis(200);
            for attempt in 1..=MAX_ATTEMPTS {
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => break,
                    outcome => {
                        let why = match outcome {
                            Ok(r) => format!("status {}", r.status()),
                            Err(e) => e.to_string(),
                        };
                        if attempt == MAX_ATTEMPTS {
                            tracing::error!(sink = %name, rule = %notification.rule, error = %why, "giving up delivering an alert");
                            break;
                        }
                        tracing::warn!(sink = %name, attempt, error = %why, retry_in = ?delay, "delivering an alert failed; retrying");
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
    });
    Queue { tx, dropped }
}

impl Queue {
    fn push(&self, n: Notification) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(n) {
            let dropped = self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            tracing::error!(dropped, "an alert sink is too far behind; a notification was dropped");
        }
    }
}

/// Kinds whose alert lasts until the process ends.
const LASTING: &[&str] = &["stuck", "sla_breached"];

/// The rule state: per-process alerts firing, rate windows and rate alerts firing.
struct Evaluator {
    rules: Vec<AlertRule>,
    windows: Vec<u64>,
    sinks: HashMap<String, Queue>,
    /// (rule index, process id, kind) firing.
    firing: HashMap<(usize, String, String), (u64, String)>,
    /// One-shot alerts already sent: (rule index, process id, kind).
    sent: HashSet<(usize, String, String)>,
    /// (rule index, type) → event times.
    counts: HashMap<(usize, String), VecDeque<u64>>,
    rate_firing: HashMap<(usize, String), u64>,
    log: AlertLog,
}

impl Evaluator {
    fn notify(&self, rule: usize, n: Notification) {
        self.log.record(&n);
        let names = &self.rules[rule].sinks;
        for (name, queue) in &self.sinks {
            if names.is_empty() || names.contains(name) {
                queue.push(n.clone());
            }
        }
    }

    fn on_event(&mut self, event: &StoredEvent) {
        let process_id = event.process_id.to_hex();
        for index in 0..self.rules.len() {
            let rule = &self.rules[index];
            if rule.process_type != "*" && rule.process_type != event.process_type {
                continue;
            }
            if rule.on.contains(&event.kind) {
                let key = (index, process_id.clone(), event.kind.clone());
                let lasting = LASTING.contains(&event.kind.as_str());
                let new = if lasting {
                    !self.firing.contains_key(&key)
                } else {
                    self.sent.insert(key.clone())
                };
                if new {
                    let summary = format!(
                        "process {process_id} of type {} {}{}",
                        event.process_type,
                        event.kind.replace('_', " "),
                        if event.detail.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", event.detail)
                        }
                    );
                    if lasting {
                        self.firing.insert(key, (event.at, summary.clone()));
                    }
                    self.notify(
                        index,
                        Notification {
                            rule: rule.name.clone(),
                            status: "firing",
                            process_type: event.process_type.clone(),
                            process_id: Some(process_id.clone()),
                            event: event.kind.clone(),
                            starts_at: event.at,
                            ends_at: None,
                            summary,
                        },
                    );
                }
            }
            // The process ended or reopened: its lasting alerts resolve.
            if matches!(event.kind.as_str(), "completed" | "failed" | "reopened") {
                for kind in LASTING {
                    let key = (index, process_id.clone(), (*kind).to_owned());
                    if let Some((started, summary)) = self.firing.remove(&key) {
                        self.notify(
                            index,
                            Notification {
                                rule: self.rules[index].name.clone(),
                                status: "resolved",
                                process_type: event.process_type.clone(),
                                process_id: Some(process_id.clone()),
                                event: (*kind).to_owned(),
                                starts_at: started,
                                ends_at: Some(event.at),
                                summary: format!(
                                    "{summary} (resolved: the process {})",
                                    event.kind
                                ),
                            },
                        );
                    }
                }
            }
            if let Some(rate) = &self.rules[index].rate
                && rate.kind == event.kind
            {
                self.counts
                    .entry((index, event.process_type.clone()))
                    .or_default()
                    .push_back(event.at);
            }
        }
        self.evaluate_rates(event.at);
    }

    /// Fires and resolves rate alerts as of `now`.
    fn evaluate_rates(&mut self, now: u64) {
        let mut changes = Vec::new();
        for ((index, process_type), times) in &mut self.counts {
            let (rule, window) = (&self.rules[*index], self.windows[*index]);
            let Some(rate) = &rule.rate else { continue };
            while times.front().is_some_and(|t| *t + window < now) {
                times.pop_front();
            }
            let count = times.len() as u64;
            let key = (*index, process_type.clone());
            let firing = self.rate_firing.contains_key(&key);
            if count >= rate.count && !firing {
                changes.push((key, true, count, times.front().copied().unwrap_or(now)));
            } else if count < rate.count && firing {
                changes.push((key, false, count, now));
            }
        }
        for ((index, process_type), fire, count, at) in changes {
            let rule = &self.rules[index];
            let Some(rate) = &rule.rate else { continue };
            let summary = format!(
                "{count} {} processes of type {process_type} within {}",
                rate.kind.replace('_', " "),
                rate.window
            );
            let notification = if fire {
                self.rate_firing.insert((index, process_type.clone()), at);
                Notification {
                    rule: rule.name.clone(),
                    status: "firing",
                    process_type,
                    process_id: None,
                    event: rate.kind.clone(),
                    starts_at: at,
                    ends_at: None,
                    summary,
                }
            } else {
                let started = self.rate_firing.remove(&(index, process_type.clone())).unwrap_or(at);
                Notification {
                    rule: rule.name.clone(),
                    status: "resolved",
                    process_type,
                    process_id: None,
                    event: rate.kind.clone(),
                    starts_at: started,
                    ends_at: Some(at),
                    summary,
                }
            };
            self.notify(index, notification);
        }
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Starts the evaluator and sink workers when there are rules; they stop with `stop`.
pub fn start(
    rules: &[AlertRule],
    sinks: &[Sink],
    mut events: broadcast::Receiver<Arc<StoredEvent>>,
    stop: CancellationToken,
    log: AlertLog,
) {
    if rules.is_empty() {
        return;
    }
    let windows = rules
        .iter()
        .map(|r| {
            r.rate
                .as_ref()
                .and_then(|rate| threadline_config::spec::parse_duration(&rate.window).ok())
                .unwrap_or(0)
        })
        .collect();
    let mut evaluator = Evaluator {
        rules: rules.to_vec(),
        windows,
        sinks: sinks.iter().map(|s| (s.name.clone(), start_sink(s, stop.clone()))).collect(),
        firing: HashMap::new(),
        sent: HashSet::new(),
        counts: HashMap::new(),
        rate_firing: HashMap::new(),
        log,
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => evaluator.evaluate_rates(now_nanos()),
                event = events.recv() => match event {
                    Ok(event) => evaluator.on_event(&event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::error!(missed, "alert rules fell behind the event stream; events were skipped");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn times_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_700_000_000_500_000_000), "2023-11-14T22:13:20.500000000Z");
        assert_eq!(rfc3339(1_709_164_800_000_000_001), "2024-02-29T00:00:00.000000001Z");
    }
}
