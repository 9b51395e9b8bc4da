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

const SHAPE: Shape = Shape { traces: 100, services: 10, seed: 7 };
const MEASURE: Duration = Duration::from_secs(3);

fn main() {
    let spans = generate::span_count(SHAPE);
    let request = generate::otlp_request(SHAPE);
    let protobuf = request.encode_to_vec();
    let json = generate::otlp_json(&request).to_string().into_bytes();
    let zipkin = generate::zipkin_json(SHAPE).to_string().into_bytes();
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let (queue, mut rx) = span_queue(1 << 20, Duration::from_secs(1));

    let mut hand_off = |decoded: Decoded| {
        assert_eq!(decoded.spans.len(), spans);
        let ack = queue.submit(decoded.spans).expect("queue has room");
        let mut delivery = rx.try_recv().expect("queued");
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
    let baseline = measure("prost decode only (baseline)", spans, || {
        drop(ExportTraceServiceRequest::decode(protobuf.as_slice()).expect("decodes"));
    });
    let results = [
        measure("OTLP protobuf: decode + validate + hand-off", spans, || {
            hand_off(convert_otlp(
                body::decode_otlp(&protobuf, Encoding::Protobuf).expect("decodes"),
            ));
        }),
        measure("OTLP JSON: decode + validate + hand-off", spans, || {
            hand_off(convert_otlp(body::decode_otlp(&json, Encoding::Json).expect("decodes")));
        }),
        measure("Zipkin v2 JSON: decode + validate + hand-off", spans, || {
            hand_off(convert_zipkin(body::decode_zipkin(&zipkin).expect("decodes")));
        }),
    ];
    for (name, rate) in results {
        println!("{name:<48} {:>12.0} spans/s  ({:.2}x baseline)", rate, rate / baseline.1);
    }
}

fn measure(name: &'static str, spans: usize, mut run: impl FnMut()) -> (&'static str, f64) {
    for _ in 0..20 {
        run();
    }
    let start = Instant::now();
    let mut batches = 0u64;
    while start.elapsed() < MEASURE {
        run();
        batches += 1;
    }
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let rate = (batches * spans as u64) as f64 / start.elapsed().as_secs_f64();
    println!("{name:<48} {rate:>12.0} spans/s");
    (name, rate)
}
