//! The server configuration file (TOML, `version = 1`): parsed strictly (unknown keys are
//! errors that name the line), validated into typed structs with defaults for everything left
//! out. `docs/configuration.md` documents every option; `examples/threadline.toml` is parsed by
//! a test so it cannot drift.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod spec;

/// The configuration format version this build reads.
pub const CONFIG_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version; must be [`CONFIG_VERSION`].
    pub version: u32,
    /// Where Threadline keeps its data; defaults to the user's data directory.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// A process spec file (`docs/specs.md`); none by default.
    #[serde(default)]
    pub specs: Option<PathBuf>,
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub ingest: Ingest,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub engine: Engine,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub security: Security,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub query: Query,
    /// Alert rules (`[[alert]]`).
    #[serde(default, rename = "alert")]
    pub alerts: Vec<AlertRule>,
    /// Where alerts go (`[[sink]]`).
    #[serde(default, rename = "sink")]
    pub sinks: Vec<Sink>,
}

/// An alert rule: per process (an event of one of `on` for a process of the type) or on a
/// rate (`rate`: at least `count` events of one kind within `window`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    /// A process type, or `*` for every type.
    #[serde(rename = "type", default = "any_type")]
    pub process_type: String,
    /// Event kinds that raise a per-process alert.
    #[serde(default)]
    pub on: Vec<String>,
    pub rate: Option<RateRule>,
    /// Names of the sinks to notify (default: every sink).
    #[serde(default)]
    pub sinks: Vec<String>,
}

fn any_type() -> String {
    "*".to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    /// The event kind counted.
    pub kind: String,
    pub count: u64,
    /// A duration such as `5m`.
    pub window: String,
}

/// A destination of alerts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sink {
    pub name: String,
    /// `alertmanager` (its `/api/v2/alerts` payload), `webhook` (generic JSON) or `log`.
    pub kind: String,
    /// Where to POST (not for `log`).
    pub url: Option<String>,
}

/// Event kinds an alert rule may name.
pub const ALERT_EVENT_KINDS: &[&str] =
    &["failed", "sla_breached", "stuck", "spec_violated", "reopened"];

impl Default for Config {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            data_dir: None,
            specs: None,
            listen: Listen::default(),
            ingest: Ingest::default(),
            storage: Storage::default(),
            engine: Engine::default(),
            log: Log::default(),
            security: Security::default(),
            tls: Tls::default(),
            query: Query::default(),
            alerts: Vec::new(),
            sinks: Vec::new(),
        }
    }
}

/// Listener addresses. Every listener defaults to its standard port on 127.0.0.1.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub zipkin: SocketAddr,
    pub api: SocketAddr,
}

impl Default for Listen {
    fn default() -> Self {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Self {
            otlp_grpc: local(4317),
            otlp_http: local(4318),
            zipkin: local(9411),
            api: local(7600),
        }
    }
}

/// Limits of the receivers and of the queue between them and the store.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ingest {
    /// Spans accepted but not yet stored, at most. A request that would pass it is refused with
    /// 429 / `UNAVAILABLE` and a retry delay.
    pub queue_capacity_spans: usize,
    /// Largest request body as sent (compressed or not), in bytes; larger is refused with 413.
    pub max_request_bytes: usize,
    /// Largest request body after decompression, in bytes; larger is refused with 413.
    pub max_decompressed_bytes: usize,
    /// OTLP/HTTP and Zipkin requests handled at once; more are refused with 503 before their
    /// body is read, which bounds the memory held by request bodies.
    pub max_concurrent_requests: usize,
    /// The delay suggested to clients refused for overload (`Retry-After`, gRPC `RetryInfo`).
    pub retry_after_secs: u32,
}

impl Default for Ingest {
    fn default() -> Self {
        Self {
            queue_capacity_spans: 262_144,
            max_request_bytes: 8 << 20,
            max_decompressed_bytes: 64 << 20,
            max_concurrent_requests: 256,
            retry_after_secs: 1,
        }
    }
}

/// When the write-ahead log is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Before every acknowledgement (one fsync per group of batches).
    Always,
    /// At most every `fsync_interval_ms`; acknowledged once written to the OS.
    Interval,
    /// Left to the OS.
    Never,
}

/// Durable storage: the write-ahead log, span blocks and their retention.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    pub fsync: Fsync,
    pub fsync_interval_ms: u64,
    /// A WAL segment is closed once it reaches this size.
    pub wal_segment_bytes: u64,
    /// Spans held in memory (and the WAL) before they are written as a block...
    pub flush_spans: usize,
    /// ...or the longest they wait for it.
    pub flush_interval_secs: u64,
    /// Spans held in memory not yet in a block, at most: when blocks are written slower than
    /// spans arrive, ingest waits (and receivers answer "try later") rather than memory grow.
    /// Unset: three times `flush_spans`, at least 900,000 (see [`Storage::head_limit`]).
    pub max_head_spans: Option<usize>,
    /// Blocks whose newest span started longer ago are deleted.
    pub retention_hours: u64,
    /// When blocks take more bytes than this, the oldest are deleted (0: no limit).
    pub max_block_bytes: u64,
    /// Blocks smaller than this are merged, several at a time, into bigger ones.
    pub compact_below_bytes: u64,
    /// Memory the index (block list, process table and its indexes) keeps of its file's pages,
    /// at most, in MiB; pages past it are read from the file again when needed.
    pub index_cache_mib: u64,
    /// Where span blocks go: `<data dir>/blocks` when absent, else `file:///dir` or
    /// `s3://bucket/prefix`.
    pub blocks_url: Option<String>,
    /// Settings of the block store for that URL (for S3: `aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`, ...).
    pub blocks_options: std::collections::BTreeMap<String, String>,
}

impl Storage {
    /// The spans held in memory not yet in a block, at most: `max_head_spans`, or when unset
    /// three times `flush_spans` and at least 900,000.
    pub fn head_limit(&self) -> usize {
        self.max_head_spans.unwrap_or_else(|| self.flush_spans.saturating_mul(3).max(900_000))
    }
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            fsync: Fsync::Always,
            fsync_interval_ms: 200,
            wal_segment_bytes: 64 << 20,
            flush_spans: 300_000,
            flush_interval_secs: 10,
            max_head_spans: None,
            retention_hours: 7 * 24,
            max_block_bytes: 0,
            compact_below_bytes: 16 << 20,
            index_cache_mib: 64,
            blocks_url: None,
            blocks_options: std::collections::BTreeMap::new(),
        }
    }
}

/// The process engine: how processes are judged when no spec says otherwise, and its limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Engine {
    /// A structurally complete process must stay so this long before it is declared completed.
    pub settle_ms: u64,
    /// How long a trace first seen through a non-root span waits for a link to join it to its
    /// producer's process before it is announced as a process of its own.
    pub join_window_ms: u64,
    /// No telemetry for this long completes a process whose structure is incomplete
    /// (completion by quiescence).
    pub idle_timeout_secs: u64,
    /// A message awaited this long by a known consumer group makes its process stuck.
    pub stuck_after_secs: u64,
    /// End-to-end SLA of every process type without a spec of its own; none when absent.
    pub default_sla_secs: Option<u64>,
    /// Most processes held in memory; new processes past it are not tracked (counted).
    pub max_in_flight: usize,
    /// How long a finished process stays in memory, so that late spans reopen it.
    pub retain_finished_secs: u64,
    /// Engine shards, each a thread owning the processes routed to it; 0: one per four cores,
    /// at least one.
    pub shards: usize,
}

impl Default for Engine {
    fn default() -> Self {
        Self {
            settle_ms: 20,
            join_window_ms: 2000,
            idle_timeout_secs: 300,
            stuck_after_secs: 60,
            default_sla_secs: None,
            max_in_flight: 1_000_000,
            retain_finished_secs: 60,
            shards: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: expected \"text\" or \"json\"")),
        }
    }
}

/// TLS for every listener (OTLP gRPC and HTTP, Zipkin, the API): PEM files of the
/// certificate chain and its private key. Without them, plain TCP.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// Limits of SQL queries (`POST /api/v1/sql`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Query {
    /// Rows returned at most; a result with more is cut and marked `truncated`.
    pub sql_max_rows: usize,
    /// A query still running after this long is cancelled (at most 25: blocks a query reads
    /// stay on disk 30 s after compaction or retention removes them).
    pub sql_timeout_secs: u64,
    /// Memory the operators of one query may hold (sorts, joins, aggregations).
    pub sql_memory_mb: usize,
    /// Queries running at once; more are refused with 429.
    pub sql_max_concurrent: usize,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            sql_max_rows: 10_000,
            sql_timeout_secs: 10,
            sql_memory_mb: 512,
            sql_max_concurrent: 4,
        }
    }
}

/// Who may talk to the server. Without tokens, anyone who reaches the listeners may.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Security {
    /// Bearer token required by the OTLP (HTTP and gRPC) and Zipkin receivers.
    pub ingest_token: Option<String>,
    /// Bearer token required by the HTTP API and `/metrics` (not by `/healthz`, `/readyz`).
    pub api_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// Filter directives, as in `info` or `info,threadline_ingest=debug`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for Log {
    fn default() -> Self {
        Self { level: "info".to_owned(), format: LogFormat::Text }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: describe_toml_error(text, &e),
        })?;
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { path: origin.to_owned(), message })?;
        Ok(config)
    }

    fn validate_alerts(&self) -> Result<(), String> {
        for (i, sink) in self.sinks.iter().enumerate() {
            let at = format!("sink[{i}] ({:?})", sink.name);
            match (sink.kind.as_str(), &sink.url) {
                ("alertmanager" | "webhook", Some(url))
                    if url.starts_with("http://") || url.starts_with("https://") => {}
                ("alertmanager" | "webhook", _) => {
                    return Err(format!("{at}.url must be an http:// or https:// URL"));
                }
                ("log", _) => {}
                (other, _) => {
                    return Err(format!(
                        "{at}.kind {other:?} must be alertmanager, webhook or log"
                    ));
                }
            }
            if self.sinks[..i].iter().any(|s| s.name == sink.name) {
                return Err(format!("{at}: a second sink of that name"));
            }
        }
        for (i, rule) in self.alerts.iter().enumerate() {
            let at = format!("alert[{i}] ({:?})", rule.name);
            for kind in &rule.on {
                if !ALERT_EVENT_KINDS.contains(&kind.as_str()) {
                    return Err(format!(
                        "{at}.on: {kind:?} is not one of {}",
                        ALERT_EVENT_KINDS.join(", ")
                    ));
                }
            }
            match (&rule.rate, rule.on.is_empty()) {
                (None, true) => return Err(format!("{at}: give `on` (event kinds) or `rate`")),
                (Some(_), false) => return Err(format!("{at}: give `on` or `rate`, not both")),
                (Some(rate), true) => {
                    if !ALERT_EVENT_KINDS.contains(&rate.kind.as_str()) {
                        return Err(format!(
                            "{at}.rate.kind: {:?} is not one of {}",
                            rate.kind,
                            ALERT_EVENT_KINDS.join(", ")
                        ));
                    }
                    if rate.count == 0 {
                        return Err(format!("{at}.rate.count must be greater than 0"));
                    }
                    spec::parse_duration(&rate.window)
                        .map_err(|e| format!("{at}.rate.window: {e}"))?;
                }
                (None, false) => {}
            }
            for sink in &rule.sinks {
                if !self.sinks.iter().any(|s| s.name == *sink) {
                    return Err(format!("{at}.sinks: no sink named {sink:?}"));
                }
            }
        }
        Ok(())
    }

    /// Checks what types alone cannot: the version and that limits are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != CONFIG_VERSION {
            return Err(format!(
                "version {} is not supported: this threadline reads version {CONFIG_VERSION}",
                self.version
            ));
        }
        let positive = [
            ("ingest.queue_capacity_spans", self.ingest.queue_capacity_spans),
            ("ingest.max_request_bytes", self.ingest.max_request_bytes),
            ("ingest.max_decompressed_bytes", self.ingest.max_decompressed_bytes),
            ("ingest.max_concurrent_requests", self.ingest.max_concurrent_requests),
            ("storage.flush_spans", self.storage.flush_spans),
            ("engine.max_in_flight", self.engine.max_in_flight),
            ("query.sql_max_rows", self.query.sql_max_rows),
            ("query.sql_memory_mb", self.query.sql_memory_mb),
            ("query.sql_max_concurrent", self.query.sql_max_concurrent),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("{name} must be greater than 0"));
            }
        }
        if !(1..=25).contains(&self.query.sql_timeout_secs) {
            return Err(format!(
                "query.sql_timeout_secs ({}) must be between 1 and 25",
                self.query.sql_timeout_secs
            ));
        }
        if let Some(limit) = self.storage.max_head_spans
            && limit < self.storage.flush_spans
        {
            return Err(format!(
                "storage.max_head_spans ({limit}) must be at least storage.flush_spans ({})",
                self.storage.flush_spans
            ));
        }
        if self.ingest.max_decompressed_bytes < self.ingest.max_request_bytes {
            return Err(format!(
                "ingest.max_decompressed_bytes ({}) must be at least ingest.max_request_bytes ({})",
                self.ingest.max_decompressed_bytes, self.ingest.max_request_bytes
            ));
        }
        let positive_u64 = [
            ("storage.fsync_interval_ms", self.storage.fsync_interval_ms),
            ("storage.wal_segment_bytes", self.storage.wal_segment_bytes),
            ("storage.flush_interval_secs", self.storage.flush_interval_secs),
            ("storage.retention_hours", self.storage.retention_hours),
            ("storage.index_cache_mib", self.storage.index_cache_mib),
        ];
        for (name, value) in positive_u64 {
            if value == 0 {
                return Err(format!("{name} must be greater than 0"));
            }
        }
        for (name, token) in [
            ("security.ingest_token", &self.security.ingest_token),
            ("security.api_token", &self.security.api_token),
        ] {
            if let Some(token) = token
                && (token.len() < 16 || token.chars().any(char::is_whitespace))
            {
                return Err(format!("{name} must be at least 16 characters, without spaces"));
            }
        }
        self.validate_alerts()?;
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(
                "tls.cert_file and tls.key_file go together: give both or neither".to_owned()
            );
        }
        if self.log.level.trim().is_empty() {
            return Err("log.level must not be empty".to_owned());
        }
        Ok(())
    }
}

/// A TOML error as "line L, column C: message", so users can find the spot.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end_matches('\n');
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(text: &str, expected: Expect) {
        let actual = match Config::parse(text, "test.toml") {
            Ok(config) => format!("{config:#?}"),
            Err(e) => format!("error: {e}"),
        };
        expected.assert_eq(&actual);
    }

    #[test]
    fn the_shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/threadline.toml");
        let config = Config::load(&path).unwrap();
        // The example spells out the defaults (except where it says otherwise).
        assert_eq!(config.listen, Listen::default());
        assert_eq!(config.ingest, Ingest::default());
        assert_eq!(config.storage, Storage::default());
        assert_eq!(config.engine, Engine::default());
    }

    #[test]
    fn a_minimal_file_takes_every_default() {
        let config = Config::parse("version = 1\n", "t").unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn unknown_keys_name_the_line() {
        check(
            "version = 1\n[ingest]\nqueue_capacity = 10\n",
            expect![
                "error: test.toml: line 3, column 1: unknown field `queue_capacity`, expected one of `queue_capacity_spans`, `max_request_bytes`, `max_decompressed_bytes`, `max_concurrent_requests`, `retry_after_secs`"
            ],
        );
    }

    #[test]
    fn bad_values_name_the_line() {
        check(
            "version = 1\n[listen]\napi = \"localhost\"\n",
            expect!["error: test.toml: line 3, column 7: invalid socket address syntax"],
        );
        check(
            "version = 1\n[log]\nformat = \"xml\"\n",
            expect![
                "error: test.toml: line 3, column 10: unknown variant `xml`, expected `text` or `json`"
            ],
        );
    }

    #[test]
    fn version_is_required_and_checked() {
        check("", expect!["error: test.toml: line 1, column 1: missing field `version`"]);
        check(
            "version = 2\n",
            expect![
                "error: test.toml: version 2 is not supported: this threadline reads version 1"
            ],
        );
    }

    #[test]
    fn limits_are_validated() {
        check(
            "version = 1\n[ingest]\nqueue_capacity_spans = 0\n",
            expect!["error: test.toml: ingest.queue_capacity_spans must be greater than 0"],
        );
        check(
            "version = 1\n[storage]\nindex_cache_mib = 0\n",
            expect!["error: test.toml: storage.index_cache_mib must be greater than 0"],
        );
        check(
            "version = 1\n[storage]\nflush_spans = 500000\nmax_head_spans = 400000\n",
            expect![
                "error: test.toml: storage.max_head_spans (400000) must be at least storage.flush_spans (500000)"
            ],
        );
    }

    #[test]
    fn the_head_limit_follows_flush_spans_unless_set() {
        let head = |text: &str| Config::parse(text, "t").unwrap().storage.head_limit();
        assert_eq!(head("version = 1\n"), 900_000);
        assert_eq!(head("version = 1\n[storage]\nflush_spans = 1000\n"), 900_000);
        assert_eq!(head("version = 1\n[storage]\nflush_spans = 10000000\n"), 30_000_000);
        assert_eq!(head("version = 1\n[storage]\nmax_head_spans = 2000000\n"), 2_000_000);
    }
}
