//! The commands that talk to a running server over its HTTP API: `process show`, `search`,
//! `sql` and `expect` (for integration tests: wait until a process reaches a state with the right
//! steps, or say why not). Exit codes: 0 done (or met), 1 not met / not found, 2 usage or
//! connection error. A closed stdout (`| head`) ends the command normally.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use threadline_api_types::{
    ProcessListResponse, ProcessResponse, ProcessSummary, SqlRequest, SqlResponse, WaitingView,
};

/// How to reach the server.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The server's HTTP API.
    #[arg(
        long,
        env = "THREADLINE_SERVER",
        default_value = "http://127.0.0.1:7600",
        value_name = "URL"
    )]
    pub server: String,
    /// Bearer token of the API, if it needs one.
    #[arg(long, env = "THREADLINE_API_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Why a command stopped: not met (1) or could not run (2).
#[derive(Debug)]
enum Failure {
    NotMet(String),
    Usage(String),
}

/// Output that treats a closed pipe as the reader being done.
fn out(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::Usage(format!("writing output: {e}")))
        }
        _ => Ok(()),
    }
}

#[allow(clippy::print_stderr, reason = "a command says why it did not succeed on stderr")]
fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::NotMet(reason)) => {
            eprintln!("not met: {reason}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(reason)) => {
            eprintln!("error: {reason}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("starting the runtime: {e}")))
}

struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    fn new(connection: &Connection) -> Self {
        Self {
            base: connection.server.trim_end_matches('/').to_owned(),
            token: connection.token.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// GETs `path` (with `query`); `Ok(None)` for 404.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<T>, Failure> {
        let request = self.http.get(format!("{}{path}", self.base)).query(query);
        match self.send(path, request).await? {
            (reqwest::StatusCode::NOT_FOUND, _) => Ok(None),
            (status, body) => Self::answer(path, status, &body).map(Some),
        }
    }

    /// POSTs `body` as JSON to `path`; a 400 says only the server's message (the user's
    /// input is what is wrong).
    async fn post<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        let (status, text) = self.send(path, request).await?;
        if status == reqwest::StatusCode::BAD_REQUEST {
            return Err(Failure::Usage(error_message(text)));
        }
        Self::answer(path, status, &text)
    }

    /// Sends with the token; the status and body text.
    async fn send(
        &self,
        path: &str,
        mut request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, String), Failure> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Usage(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Failure::Usage(format!("{path}: reading the answer: {e}")))?;
        Ok((status, text))
    }

    /// A success's body as `T`, or the error the server gave.
    fn answer<T: serde::de::DeserializeOwned>(
        path: &str,
        status: reqwest::StatusCode,
        body: &str,
    ) -> Result<T, Failure> {
        if !status.is_success() {
            return Err(Failure::Usage(format!(
                "{path}: {status}: {}",
                error_message(body.to_owned())
            )));
        }
        serde_json::from_str(body)
            .map_err(|e| Failure::Usage(format!("{path}: unexpected answer: {e}")))
    }
}

/// The message of the API's error shape, or the whole body when it is not one.
fn error_message(body: String) -> String {
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or(body)
}

/// Widest a table cell is printed; longer values are cut with `…`.
const CELL_WIDTH: usize = 60;

fn cell(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::Null => "NULL".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = text.replace(['\n', '\t'], " ");
    if text.chars().count() > CELL_WIDTH {
        let cut: String = text.chars().take(CELL_WIDTH - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// A result as an aligned table: header, rule, rows, and the row count.
fn sql_table(result: &SqlResponse) -> String {
    let header: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
    let rows: Vec<Vec<String>> = result.rows.iter().map(|r| r.iter().map(cell).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut text = line(&header);
    text.push_str(&line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>()));
    for row in &rows {
        text.push_str(&line(row));
    }
    let n = result.rows.len();
    text.push_str(&format!(
        "({n} row{}{})\n",
        if n == 1 { "" } else { "s" },
        if result.truncated { "; more were cut: narrow the query or raise --max-rows" } else { "" }
    ));
    text
}

/// `threadline sql "SELECT ..."`: runs a query on the server; the table (or JSON) of rows.
pub fn sql(connection: &Connection, query: &str, max_rows: Option<usize>) -> ExitCode {
    finish((|| {
        let api = Api::new(connection);
        let request = SqlRequest { query: query.to_owned(), max_rows };
        let result: SqlResponse = runtime()?.block_on(api.post("/api/v1/sql", &request))?;
        if connection.json {
            return out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&result).unwrap_or_default()
            ));
        }
        out(&sql_table(&result))
    })())
}

/// `key=value` or `key:value`.
fn split_key(text: &str) -> Result<(String, String), Failure> {
    text.split_once(['=', ':'])
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| {
            Failure::Usage(format!("--key {text:?} must be NAME=VALUE, as in order.id=123"))
        })
}

fn waiting_text(w: &WaitingView) -> String {
    match w {
        WaitingView::Message { system, destination, consumer_group, .. } => {
            format!("{system} {destination} for consumer group {consumer_group}")
        }
        WaitingView::MissingParent { count } => {
            format!("{count} span(s) whose parent has not arrived")
        }
        WaitingView::Root => "its root span".to_owned(),
    }
}

fn row(p: &ProcessSummary) -> String {
    let flags = [(p.stuck, "stuck"), (p.sla_breached, "sla_breached")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(",");
    let ms = p.duration_nanos.parse::<u64>().unwrap_or(0) / 1_000_000;
    let keys = p.keys.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
    format!(
        "{:<32}  {:<24}  {:<9}  {:>9}  {:<18}  {}\n",
        p.id,
        p.process_type,
        p.state,
        format!("{ms} ms"),
        flags,
        keys
    )
}

const HEADER: &str = "ID                                TYPE                      STATE       DURATION  FLAGS               KEYS\n";

/// `threadline process show ID` or `--key k=v`.
pub fn show(connection: &Connection, id: Option<&str>, key: Option<&str>) -> ExitCode {
    finish((|| {
        let api = Api::new(connection);
        runtime()?.block_on(async {
            let id = match (id, key) {
                (Some(id), None) => id.to_owned(),
                (None, Some(key)) => {
                    let (k, v) = split_key(key)?;
                    let list: ProcessListResponse = api
                        .get("/api/v1/processes", &[("key", format!("{k}:{v}"))])
                        .await?
                        .ok_or_else(|| Failure::NotMet("no process list".into()))?;
                    let first = list
                        .processes
                        .first()
                        .ok_or_else(|| Failure::NotMet(format!("no process with {k}={v}")))?;
                    first.id.clone()
                }
                _ => {
                    return Err(Failure::Usage(
                        "give a process id or --key NAME=VALUE, not both".into(),
                    ));
                }
            };
            let process: ProcessResponse = api
                .get(&format!("/api/v1/processes/{id}"), &[])
                .await?
                .ok_or_else(|| Failure::NotMet(format!("process {id} not found")))?;
            if connection.json {
                return out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&process).unwrap_or_default()
                ));
            }
            let p = &process.process;
            let mut text = String::new();
            text.push_str(HEADER);
            text.push_str(&row(p));
            if let Some(failure) = &p.failure {
                text.push_str(&format!("failure: {failure}\n"));
            }
            for w in &p.waiting_for {
                text.push_str(&format!("waiting for: {}\n", waiting_text(w)));
            }
            if let Some(spec) = &p.spec {
                for v in &spec.violations {
                    text.push_str(&format!("spec violation: {v}\n"));
                }
            }
            text.push_str("timeline:\n");
            let start = p.start_time_unix_nano.parse::<u64>().unwrap_or(0);
            for span in &process.timeline {
                let at =
                    span.start_time_unix_nano.parse::<u64>().unwrap_or(0).saturating_sub(start)
                        / 1_000_000;
                text.push_str(&format!("  +{at:>6} ms  {:<16} {}\n", span.service_name, span.name));
            }
            out(&text)
        })
    })())
}

/// Search by spans, and the order of results.
#[derive(Debug, Clone, clap::Args)]
pub struct SpanFilter {
    /// Processes with a span of this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Processes with a span of this operation.
    #[arg(long)]
    pub operation: Option<String>,
    /// Processes with a span attribute NAME=VALUE, as in http.route=/checkout.
    #[arg(long)]
    pub attr: Option<String>,
    /// start, duration or last_activity.
    #[arg(long, default_value = "start")]
    pub sort: String,
    /// Oldest or shortest first instead.
    #[arg(long)]
    pub asc: bool,
}

/// `threadline search`: processes by key, type, state, spans.
pub fn search(
    connection: &Connection,
    key: Option<&str>,
    process_type: Option<&str>,
    state: Option<&str>,
    spans: &SpanFilter,
    limit: usize,
) -> ExitCode {
    finish((|| {
        let api = Api::new(connection);
        let mut query = vec![("limit", limit.to_string()), ("sort", spans.sort.clone())];
        if spans.asc {
            query.push(("order", "asc".to_owned()));
        }
        for (name, value) in
            [("service", &spans.service), ("operation", &spans.operation), ("attr", &spans.attr)]
        {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        if let Some(key) = key {
            let (k, v) = split_key(key)?;
            query.push(("key", format!("{k}:{v}")));
        }
        if let Some(t) = process_type {
            query.push(("type", t.to_owned()));
        }
        if let Some(s) = state {
            query.push(("state", s.to_owned()));
        }
        let list: ProcessListResponse = runtime()?
            .block_on(api.get("/api/v1/processes", &query))?
            .ok_or_else(|| Failure::NotMet("no process list".into()))?;
        let processes: Vec<&ProcessSummary> = list
            .processes
            .iter()
            .filter(|p| {
                process_type.is_none_or(|t| p.process_type == t)
                    && state.is_none_or(|s| p.state == s)
            })
            .collect();
        if connection.json {
            return out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&processes).unwrap_or_default()
            ));
        }
        let mut text = String::from(HEADER);
        for p in processes {
            text.push_str(&row(p));
        }
        out(&text)
    })())
}

/// What `threadline expect` waits for.
#[derive(Debug)]
pub struct Expectation<'a> {
    pub process_type: &'a str,
    pub key: Option<&'a str>,
    pub state: &'a str,
    /// Operations (`name` or `service:name`) that must appear, in this order.
    pub steps: Vec<String>,
    pub within: Duration,
}

/// Checks `steps` against the timeline: each must occur, in the given order of first
/// occurrences. `Err` says which is missing or out of order.
fn check_steps(steps: &[String], timeline: &ProcessResponse) -> Result<(), String> {
    let mut previous: Option<(usize, &str)> = None;
    for step in steps {
        let found = timeline.timeline.iter().position(|span| match step.split_once(':') {
            Some((service, name)) => span.service_name == service && span.name == name,
            None => span.name == *step,
        });
        let Some(at) = found else {
            return Err(format!("missing step {step}"));
        };
        if let Some((before, name)) = previous
            && at < before
        {
            return Err(format!("wrong order: {step} happened before {name}"));
        }
        previous = Some((at, step));
    }
    Ok(())
}

/// `threadline expect`: waits until a process of the type (and key) is in the state with
/// the steps, within the time given.
pub fn expect(connection: &Connection, expectation: &Expectation<'_>) -> ExitCode {
    finish((|| {
        if !["running", "completed", "failed"].contains(&expectation.state) {
            return Err(Failure::Usage(format!(
                "--state {:?} must be one of running, completed, failed",
                expectation.state
            )));
        }
        let key = expectation.key.map(split_key).transpose()?;
        let api = Api::new(connection);
        let deadline = Instant::now() + expectation.within;
        runtime()?.block_on(async {
            let mut last_seen: Option<ProcessSummary> = None;
            loop {
                let query = match &key {
                    Some((k, v)) => vec![("key", format!("{k}:{v}")), ("limit", "100".into())],
                    None => {
                        vec![("type", expectation.process_type.to_owned()), ("limit", "20".into())]
                    }
                };
                let list: ProcessListResponse = api
                    .get("/api/v1/processes", &query)
                    .await?
                    .unwrap_or(ProcessListResponse { processes: Vec::new(), next_cursor: None });
                for p in
                    list.processes.iter().filter(|p| p.process_type == expectation.process_type)
                {
                    last_seen = Some(p.clone());
                    let terminal = p.state != "running";
                    if p.state != expectation.state {
                        if terminal {
                            return Err(Failure::NotMet(format!(
                                "process {} ended {} (expected {}){}",
                                p.id,
                                p.state,
                                expectation.state,
                                p.failure.as_ref().map(|f| format!(": {f}")).unwrap_or_default()
                            )));
                        }
                        continue;
                    }
                    let detail: ProcessResponse = api
                        .get(&format!("/api/v1/processes/{}", p.id), &[])
                        .await?
                        .ok_or_else(|| Failure::NotMet(format!("process {} vanished", p.id)))?;
                    match check_steps(&expectation.steps, &detail) {
                        Ok(()) => {
                            let text = if connection.json {
                                format!(
                                    "{}\n",
                                    serde_json::to_string_pretty(&detail).unwrap_or_default()
                                )
                            } else {
                                format!("met: {}", row(&detail.process))
                            };
                            return out(&text);
                        }
                        // A finished process will not grow the steps it lacks.
                        Err(reason) if terminal => {
                            return Err(Failure::NotMet(format!("process {}: {reason}", p.id)));
                        }
                        Err(_) => {}
                    }
                }
                if Instant::now() >= deadline {
                    let where_ = match &last_seen {
                        None => format!(
                            "no process of type {}{} was seen",
                            expectation.process_type,
                            key.as_ref().map(|(k, v)| format!(" with {k}={v}")).unwrap_or_default()
                        ),
                        Some(p) => format!(
                            "process {} is {}{}",
                            p.id,
                            p.state,
                            p.waiting_for
                                .first()
                                .map(|w| format!(", waiting for {}", waiting_text(w)))
                                .unwrap_or_default()
                        ),
                    };
                    return Err(Failure::NotMet(format!(
                        "timeout after {:?}: {where_}",
                        expectation.within
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    })())
}

/// A duration such as `30s`, `500ms`, `2m`.
pub fn parse_within(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 =
        number.parse().map_err(|_| format!("{text:?} is not a duration such as 30s"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{text:?} is not a duration such as 30s"))
}
