//! Decode + hand-off throughput of the ingest path on one core, per input format: request
//! bytes → decoded wire messages → validated core spans → through the bounded queue to the
//! next stage. The baseline, measured in the same run, is bare protobuf decoding of the same
//! request (`prost` alone), so the figures are read as ratios, not absolute speeds.
//!
//! Run: `cargo bench -p threadline-ingest --bench decode` (figures in docs/benchmarks.md).

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use prost::Message as _;
use threadline_ingest::body::{self, Encoding};
use threadline_ingest::convert::{Decoded, convert_otlp};
use threadline_ingest::queue::span_queue;
use threadline_ingest::zipkin::convert_zipkin;
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use threadline_testsuite::generate::{self, Shape};

/// The allocator of the `threadline` binary, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHAPE: Shape = Shape { traces: 100, services: 10, seed: 7 };
/// Paths are measured in interleaved slices, so that noise from the machine falls on all of
/// them alike; ratios are taken per round and the median reported.
const ROUNDS: usize = 10;
const SLICE: Duration = Duration::from_millis(300);

fn main() {
    let spans = generate::span_count(SHAPE);
    let request = generate::otlp_request(SHAPE);
    let protobuf = request.encode_to_vec();
    let json = generate::otlp_json(&request).to_string().into_bytes();
    let zipkin = generate::zipkin_json(SHAPE).to_string().into_bytes();
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let (queue, rx) = span_queue(1 << 20, Duration::from_secs(1));
    let rx = std::cell::RefCell::new(rx);

    let hand_off = |decoded: Decoded| {
        assert_eq!(decoded.spans.len(), spans);
        let ack = queue.submit(decoded.spans).expect("queue has room");
        let mut delivery = rx.borrow_mut().try_recv().expect("queued");
        drop(delivery.take_spans());
        delivery.complete(Ok(()));
        runtime.block_on(ack).expect("acknowledged");
    };

    println!(
        "batch: {spans} spans; protobuf {} B, OTLP JSON {} B, Zipkin JSON {} B",
        protobuf.len(),
        json.len(),
        zipkin.len()
    );
    let mut paths: Vec<Path<'_>> = vec![
        (
            "prost decode only (baseline)",
            Box::new(|| {
                drop(ExportTraceServiceRequest::decode(protobuf.as_slice()).expect("decodes"));
            }),
        ),
        (
            "OTLP protobuf: decode + validate + hand-off",
            Box::new(|| hand_off(body::decode_spans(&protobuf, Encoding::Protobuf).expect("ok"))),
        ),
        (
            "OTLP protobuf via prost types (before)",
            Box::new(|| {
                hand_off(convert_otlp(
                    body::decode_otlp(&protobuf, Encoding::Protobuf).expect("decodes"),
                ));
            }),
        ),
        (
            "OTLP JSON: decode + validate + hand-off",
            Box::new(|| {
                hand_off(convert_otlp(body::decode_otlp(&json, Encoding::Json).expect("decodes")));
            }),
        ),
        (
            "Zipkin v2 JSON: decode + validate + hand-off",
            Box::new(|| hand_off(convert_zipkin(body::decode_zipkin(&zipkin).expect("decodes")))),
        ),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for _ in 0..ROUNDS {
        for (i, (_, run)) in paths.iter_mut().enumerate() {
            rates[i].push(measure(spans, run));
        }
    }
    for (i, (name, _)) in paths.iter().enumerate() {
        let ratios: Vec<f64> = rates[i].iter().zip(&rates[0]).map(|(r, b)| r / b).collect();
        println!(
            "{name:<48} {:>10.0} spans/s median  ({:.2}x baseline)",
            median(&rates[i]),
            median(&ratios)
        );
    }
}

/// A named path through the ingest code, run once per call.
type Path<'a> = (&'static str, Box<dyn FnMut() + 'a>);

fn measure(spans: usize, run: &mut dyn FnMut()) -> f64 {
    run();
    let start = Instant::now();
    let mut batches = 0u64;
    while start.elapsed() < SLICE {
        run();
        batches += 1;
    }
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let rate = (batches * spans as u64) as f64 / start.elapsed().as_secs_f64();
    rate
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
