//! `threadline demo`: a server on a data directory of its own, the shop's specs loaded, and
//! the simulated shop sending its telemetry over OTLP/gRPC, with faults, until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use threadline_config::spec::SpecFile;
use threadline_config::{AlertRule, Config, LogFormat, RateRule};
use threadline_sim::{Exporter, FaultRates, ProcessKind, Protocol, Shop, ShopConfig};

/// The shop's specs, built in so the demo runs from any directory.
const SHOP_SPECS: &str = include_str!("../../../examples/shop/specs.toml");

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Data directory [default: the user's data directory + /threadline/demo].
    #[arg(long, env = "THREADLINE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// HTTP API listen address [default: 127.0.0.1:7600].
    #[arg(long, value_name = "ADDR")]
    api: Option<SocketAddr>,
    /// OTLP/gRPC listen address [default: 127.0.0.1:4317].
    #[arg(long, value_name = "ADDR")]
    otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long, value_name = "ADDR")]
    otlp_http: Option<SocketAddr>,
    /// Zipkin listen address [default: 127.0.0.1:9411].
    #[arg(long, value_name = "ADDR")]
    zipkin: Option<SocketAddr>,
    /// New processes per second.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Seed of the shop's randomness [default: the time].
    #[arg(long)]
    seed: Option<u64>,
    /// No faults: every process completes in time.
    #[arg(long)]
    no_faults: bool,
    /// Log filter [default: warn].
    #[arg(long, env = "THREADLINE_LOG", value_name = "FILTER")]
    log: Option<String>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "THREADLINE_LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

fn settings(args: &DemoArgs) -> anyhow::Result<threadline_server::Settings> {
    let mut config = Config::default();
    for (value, slot) in [
        (args.api, &mut config.listen.api),
        (args.otlp_grpc, &mut config.listen.otlp_grpc),
        (args.otlp_http, &mut config.listen.otlp_http),
        (args.zipkin, &mut config.listen.zipkin),
    ] {
        if let Some(addr) = value {
            *slot = addr;
        }
    }
    config.log.level = args.log.clone().unwrap_or_else(|| "warn".to_owned());
    if let Some(format) = args.log_format {
        config.log.format = format;
    }
    anyhow::ensure!(
        args.rate.is_finite() && args.rate > 0.0 && args.rate <= 10_000.0,
        "--rate {} must be between 0 and 10000 processes per second",
        args.rate
    );
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => dirs::data_dir()
            .context("no data directory for this user: pass --data-dir")?
            .join("threadline")
            .join("demo"),
    };
    // Alerts with no sink: they show in the UI's live feed and at /api/v1/alerts.
    config.alerts = vec![
        AlertRule {
            name: "process-trouble".into(),
            process_type: "*".into(),
            on: vec!["stuck".into(), "failed".into(), "sla_breached".into()],
            rate: None,
            sinks: Vec::new(),
        },
        AlertRule {
            name: "failure-burst".into(),
            process_type: "*".into(),
            on: Vec::new(),
            rate: Some(RateRule { kind: "failed".into(), count: 3, window: "5m".into() }),
            sinks: Vec::new(),
        },
    ];
    let specs = SpecFile::parse(SHOP_SPECS, "examples/shop/specs.toml")?;
    Ok(threadline_server::Settings { config, data_dir, specs, sql: crate::sql::factory() })
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[expect(clippy::print_stdout, reason = "the guide is the command's output")]
fn guide(api: SocketAddr, data_dir: &std::path::Path) {
    let url = format!("http://{api}");
    println!(
        "Threadline demo: a simulated shop of 25 services is sending its telemetry.\n\
         \n  UI:          {url}/\n  API:         {url}/api/v1/process-types\n  Data:        {}\n\
         \nLook at, in the UI: the overview's live counts; Triage for stuck checkouts grouped by\n\
         the consumer group they wait on; a process page's timeline with its message hops and\n\
         critical path; the system map; the live feed of failures and breaches. Or search for\n\
         order.id=o-000001. From a terminal:\n\
         \x20 threadline search --type checkout --state running --server {url}\n\
         \x20 threadline search --type checkout --sort duration --server {url}\n\
         \x20 threadline process show --key order.id=o-000001 --server {url}\n\
         \x20 threadline sql \"SELECT type, state, count(*) FROM processes GROUP BY 1, 2 ORDER BY 1, 2\" --server {url}\n\
         \x20 curl '{url}/api/v1/triage?older_than=30s'\n\
         \nWhat goes wrong on purpose: lost messages leave checkouts stuck at a consumer group\n\
         (after 1 minute), slow consumers breach the 30 s checkout SLA, dead letters to shop.dlq\n\
         and declined cards fail processes, and now and then a consumer group goes down for a\n\
         minute or two. Catalog imports run for minutes.\n\
         \nPress Ctrl-C to stop.",
        data_dir.display()
    );
}

pub fn run(args: &DemoArgs) -> ExitCode {
    let settings = match settings(args) {
        Ok(settings) => settings,
        Err(e) => {
            crate::report(&e);
            return ExitCode::from(2);
        }
    };
    if let Err(e) = crate::init_logging(&settings.config.log) {
        crate::report(&e);
        return ExitCode::from(2);
    }
    let shop_config = ShopConfig {
        speed: 1.0,
        processes_per_sec: args.rate,
        faults: if args.no_faults { FaultRates::none() } else { FaultRates::demo() },
        seed: args.seed.unwrap_or_else(unix_nanos),
        kinds: ProcessKind::ALL.to_vec(),
    };
    let data_dir = settings.data_dir.clone();
    let companion: threadline_server::Companion = Box::new(move |addresses, stop| {
        Box::pin(async move {
            guide(addresses.api, &data_dir);
            let endpoint = format!("http://{}", addresses.otlp_grpc);
            let mut exporter = match Exporter::connect(Protocol::Grpc, &endpoint, None).await {
                Ok(exporter) => exporter,
                Err(e) => {
                    tracing::error!(error = %e, "the shop cannot reach the server");
                    return;
                }
            };
            let now = unix_nanos();
            let mut shop = Shop::new(shop_config, now);
            // One of each type at once, so every type is live within seconds.
            for kind in ProcessKind::ALL {
                shop.start(kind, now);
            }
            let stats =
                threadline_sim::drive(&mut shop, &mut exporter, stop.cancelled_owned()).await;
            tracing::info!(
                sent_spans = stats.sent_spans,
                dropped_spans = stats.dropped_spans,
                "the shop stopped"
            );
        })
    });
    match threadline_server::run_with(&settings, Some(companion)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let e = anyhow::Error::new(e);
            crate::report(&e);
            ExitCode::FAILURE
        }
    }
}
