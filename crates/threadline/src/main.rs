//! The `threadline` command. `serve` runs the server; `check` validates a spec file;
//! `process show`, `search` and `expect` talk to a running server (`client.rs`); later
//! commands (`demo`, `sql`, `load`) join them as they are built.
//!
//! Settings precedence: flag > environment variable > config file > default.

mod alloc;
mod client;
mod demo;
mod load;
mod sql;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use threadline_config::spec::{Recognize, SpecFile};
use threadline_config::{Config, LogFormat};

#[derive(Debug, Parser)]
#[command(name = "threadline", version, about = "Follow every distributed process, live")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: OTLP/gRPC, OTLP/HTTP and Zipkin receivers and the HTTP API.
    Serve(Box<ServeArgs>),
    /// Run a server and a simulated shop of 25 services sending it telemetry, with faults,
    /// until Ctrl-C.
    Demo(Box<demo::DemoArgs>),
    /// Send the shop's traffic to an OTLP endpoint at a rate or flat out, and report what was
    /// offered, acknowledged and refused each second, with acknowledgment latency.
    Load(Box<load::LoadArgs>),
    /// Validate a process spec file and explain what it declares or what is wrong with it.
    Check {
        /// The spec file (TOML; see docs/specs.md).
        spec_file: PathBuf,
    },
    /// Look at processes on a running server.
    #[command(subcommand)]
    Process(ProcessCommand),
    /// Find processes on a running server by business key, type, state, service, operation or
    /// attribute, sorted by start, duration or last activity.
    Search {
        #[command(flatten)]
        connection: client::Connection,
        /// A business key, as in order.id=123.
        #[arg(long)]
        key: Option<String>,
        /// A process type.
        #[arg(long = "type")]
        process_type: Option<String>,
        /// running, completed or failed.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        spans: client::SpanFilter,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Run a SQL query (tables `spans` and `processes`; see docs/sql.md) on a running server.
    Sql {
        #[command(flatten)]
        connection: client::Connection,
        /// One SELECT statement, as in "SELECT type, count(*) FROM processes GROUP BY type".
        query: String,
        /// Rows to return at most (the server's limit caps it).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max_rows: Option<u64>,
    },
    /// Wait until a process of a type (and key) reaches a state with the given steps: exit 0
    /// when met, 1 when not (saying why), 2 on a usage or connection error.
    Expect {
        #[command(flatten)]
        connection: client::Connection,
        /// The process type.
        #[arg(long = "type")]
        process_type: String,
        /// A business key, as in order.id=123.
        #[arg(long)]
        key: Option<String>,
        /// The state to reach: running, completed or failed.
        #[arg(long, default_value = "completed")]
        state: String,
        /// Operations that must have happened, in order (`name` or `service:name`), comma-separated.
        #[arg(long, value_delimiter = ',')]
        steps: Vec<String>,
        /// How long to wait, as in 30s or 2m.
        #[arg(long, default_value = "30s", value_parser = client::parse_within)]
        within: std::time::Duration,
    },
}

#[derive(Debug, Subcommand)]
enum ProcessCommand {
    /// One process: its state, keys, where it waits, spec violations and timeline.
    Show {
        #[command(flatten)]
        connection: client::Connection,
        /// The process id (or any of its trace ids).
        id: Option<String>,
        /// Find it by business key instead, as in order.id=123.
        #[arg(long, conflicts_with = "id")]
        key: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Config file (TOML); see examples/threadline.toml.
    #[arg(long, env = "THREADLINE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Process spec file (TOML; see docs/specs.md).
    #[arg(long, env = "THREADLINE_SPECS", value_name = "FILE")]
    specs: Option<PathBuf>,
    /// Data directory [default: the user's data directory + /threadline].
    #[arg(long, env = "THREADLINE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address [default: 127.0.0.1:4317].
    #[arg(long, env = "THREADLINE_OTLP_GRPC", value_name = "ADDR")]
    otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long, env = "THREADLINE_OTLP_HTTP", value_name = "ADDR")]
    otlp_http: Option<SocketAddr>,
    /// Zipkin v2 listen address [default: 127.0.0.1:9411].
    #[arg(long, env = "THREADLINE_ZIPKIN", value_name = "ADDR")]
    zipkin: Option<SocketAddr>,
    /// HTTP API listen address [default: 127.0.0.1:7600].
    #[arg(long, env = "THREADLINE_API", value_name = "ADDR")]
    api: Option<SocketAddr>,
    /// Log filter, e.g. `info` or `info,threadline_ingest=debug` [default: info].
    #[arg(long, env = "THREADLINE_LOG", value_name = "FILTER")]
    log: Option<String>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "THREADLINE_LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Bearer token the receivers require (OTLP HTTP and gRPC, Zipkin) [default: none].
    #[arg(long, env = "THREADLINE_INGEST_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    ingest_token: Option<String>,
    /// Bearer token the HTTP API and /metrics require [default: none].
    #[arg(long, env = "THREADLINE_API_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    api_token: Option<String>,
}

fn main() -> ExitCode {
    alloc::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { spec_file } => check(&spec_file),
        Command::Process(ProcessCommand::Show { connection, id, key }) => {
            client::show(&connection, id.as_deref(), key.as_deref())
        }
        Command::Search { connection, key, process_type, state, spans, limit } => client::search(
            &connection,
            key.as_deref(),
            process_type.as_deref(),
            state.as_deref(),
            &spans,
            limit,
        ),
        Command::Sql { connection, query, max_rows } => client::sql(
            &connection,
            &query,
            max_rows.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        ),
        Command::Expect { connection, process_type, key, state, steps, within } => client::expect(
            &connection,
            &client::Expectation {
                process_type: &process_type,
                key: key.as_deref(),
                state: &state,
                steps,
                within,
            },
        ),
        Command::Demo(args) => demo::run(&args),
        Command::Load(args) => load::run(&args),
        Command::Serve(args) => {
            let settings = match serve_settings(*args) {
                Ok(settings) => settings,
                Err(e) => {
                    report(&e);
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = init_logging(&settings.config.log) {
                report(&e);
                return ExitCode::from(2);
            }
            match threadline_server::run(&settings) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    let e = anyhow::Error::new(e);
                    tracing::error!(error = format!("{e:#}"), "threadline stopped with an error");
                    report(&e);
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[expect(clippy::print_stderr, reason = "the last word to a user before exiting")]
fn report(error: &anyhow::Error) {
    eprintln!("error: {error:#}");
}

/// Merges flags and environment variables (already merged by clap) over the config file
/// over the defaults.
fn serve_settings(args: ServeArgs) -> anyhow::Result<threadline_server::Settings> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let listen = &mut config.listen;
    for (value, slot) in [
        (args.otlp_grpc, &mut listen.otlp_grpc),
        (args.otlp_http, &mut listen.otlp_http),
        (args.zipkin, &mut listen.zipkin),
        (args.api, &mut listen.api),
    ] {
        if let Some(addr) = value {
            *slot = addr;
        }
    }
    if let Some(level) = args.log {
        config.log.level = level;
    }
    if let Some(format) = args.log_format {
        config.log.format = format;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = Some(dir);
    }
    if let Some(specs) = args.specs {
        config.specs = Some(specs);
    }
    if let Some(token) = args.ingest_token {
        config.security.ingest_token = Some(token);
    }
    if let Some(token) = args.api_token {
        config.security.api_token = Some(token);
    }
    config.validate().map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    let data_dir = match &config.data_dir {
        Some(dir) => dir.clone(),
        None => dirs::data_dir()
            .context("no data directory for this user: pass --data-dir")?
            .join("threadline"),
    };
    let specs = match &config.specs {
        Some(path) => SpecFile::load(path)?,
        None => SpecFile::default(),
    };
    Ok(threadline_server::Settings { config, data_dir, specs, sql: sql::factory() })
}

/// `threadline check SPECFILE`: exit 0 and a summary when valid, 1 and the error when not.
#[expect(clippy::print_stdout, reason = "the command's output")]
fn check(path: &std::path::Path) -> ExitCode {
    match SpecFile::load(path) {
        Ok(file) => {
            println!("{}: {} process types", path.display(), file.processes.len());
            for process in &file.processes {
                let recognised = match &process.recognize {
                    Recognize::Root { service, operation: Some(op) } => {
                        format!("root {service} {op}")
                    }
                    Recognize::Root { service, operation: None } => format!("root in {service}"),
                    Recognize::Attribute { key, value } => format!("{key} = {value}"),
                };
                let sla = process
                    .sla_nanos
                    .map_or_else(|| "no SLA".to_owned(), |ns| format!("SLA {}s", ns as f64 / 1e9));
                let terminal = process.steps.iter().filter(|s| s.terminal).count();
                println!(
                    "  {}: by {recognised}; {sla}; {} steps ({terminal} terminal); {} channels; owner {}",
                    process.name,
                    process.steps.len(),
                    process.channels.len(),
                    process.owner.as_ref().and_then(|o| o.team.as_deref()).unwrap_or("none"),
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            report(&anyhow::Error::new(e));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(log: &threadline_config::Log) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.level)
        .with_context(|| format!("invalid log filter {:?}", log.level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
