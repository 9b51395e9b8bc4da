"""Sends spans to Threadline with the real OpenTelemetry Python SDK and its OTLP exporters,
and writes what the SDK recorded (captured in parallel by the SDK's in-memory exporter) as
JSON, in the shape of Threadline's trace API, so a test can compare both sides field by field.

usage: otel_sdk_export.py --protocol grpc|http --endpoint URL --flows N --out FILE
"""

import argparse
import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

SERVICES = ["frontend", "checkout", "payments", "fulfilment"]


def exporter(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=30)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, timeout=30)


def value_view(value):
    # bool before int: True is an int in Python.
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [value_view(v) for v in value]}}
    raise TypeError(f"unexpected attribute type {type(value)}")


def attributes_view(attributes):
    return sorted(
        ({"key": k, "value": value_view(v)} for k, v in (attributes or {}).items()),
        key=lambda kv: kv["key"],
    )


KINDS = {
    SpanKind.INTERNAL: "internal",
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
STATUS = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}


def span_view(span):
    ctx = span.get_span_context()
    return {
        "traceId": format(ctx.trace_id, "032x"),
        "spanId": format(ctx.span_id, "016x"),
        "parentSpanId": format(span.parent.span_id, "016x") if span.parent else None,
        "name": span.name,
        "kind": KINDS[span.kind],
        "startTimeUnixNano": str(span.start_time),
        "endTimeUnixNano": str(span.end_time),
        "status": {"code": STATUS[span.status.status_code], "message": span.status.description or ""},
        "attributes": attributes_view(span.attributes),
        "events": [
            {"name": e.name, "timeUnixNano": str(e.timestamp), "attributes": attributes_view(e.attributes)}
            for e in span.events
        ],
        "links": [
            {
                "traceId": format(link.context.trace_id, "032x"),
                "spanId": format(link.context.span_id, "016x"),
                "attributes": attributes_view(link.attributes),
            }
            for link in span.links
        ],
        "resource": attributes_view(span.resource.attributes),
        "scope": {"name": span.instrumentation_scope.name, "version": span.instrumentation_scope.version or ""},
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--flows", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    recorded = InMemorySpanExporter()
    providers = {}
    for name in SERVICES:
        provider = TracerProvider(
            resource=Resource.create({"service.name": name, "service.version": "2.1.0", "deployment.environment.name": "test"})
        )
        provider.add_span_processor(BatchSpanProcessor(exporter(args.protocol, args.endpoint), max_export_batch_size=256))
        provider.add_span_processor(SimpleSpanProcessor(recorded))
        providers[name] = provider
    tracer = {name: p.get_tracer("shop.instrumentation", "0.3.1") for name, p in providers.items()}

    for i in range(args.flows):
        order = f"order-{args.protocol}-{i}"
        with tracer["frontend"].start_as_current_span(
            "POST /checkout",
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "POST",
                "http.response.status_code": 200,
                "order.id": order,
                "cart.items": 3,
                "cart.total": 99.5,
                "user.vip": i % 2 == 0,
                "cart.skus": ["sku-1", "sku-2"],
                "cart.quantities": [1, 2],
                "cart.prices": [10.25, 20.5],
                "cart.gifts": [True, False],
            },
        ) as root:
            root.add_event("cart.validated", attributes={"items": 3, "note": "ok", "ratio": 0.5, "ok": True})
            with tracer["frontend"].start_as_current_span("POST checkout/api", kind=SpanKind.CLIENT):
                with tracer["checkout"].start_as_current_span(
                    "place_order", kind=SpanKind.SERVER, attributes={"order.id": order}
                ):
                    with tracer["checkout"].start_as_current_span(
                        "orders publish",
                        kind=SpanKind.PRODUCER,
                        attributes={
                            "messaging.system": "kafka",
                            "messaging.destination.name": "orders",
                            "messaging.operation.type": "send",
                        },
                    ) as producer:
                        producer_ctx = producer.get_span_context()
        # The consumer starts a new trace and links to the producer, as batch consumers do.
        with tracer["payments"].start_as_current_span(
            "orders process",
            context=trace.set_span_in_context(trace.INVALID_SPAN),
            kind=SpanKind.CONSUMER,
            links=[Link(producer_ctx, attributes={"messaging.batch.index": 0})],
            attributes={"messaging.system": "kafka", "messaging.destination.name": "orders",
                        "messaging.consumer.group.name": "payments"},
        ) as consumer:
            with tracer["payments"].start_as_current_span("charge card", kind=SpanKind.INTERNAL) as charge:
                if i % 7 == 3:
                    charge.set_status(Status(StatusCode.ERROR, "card declined"))
                    charge.add_event("exception", attributes={"exception.type": "CardDeclined"})
                else:
                    charge.set_status(Status(StatusCode.OK))
            with tracer["fulfilment"].start_as_current_span("reserve stock", kind=SpanKind.CLIENT):
                pass

    for provider in providers.values():
        if not provider.force_flush(60_000):
            print("force_flush timed out", file=sys.stderr)
            sys.exit(1)
        provider.shutdown()

    spans = [span_view(s) for s in recorded.get_finished_spans()]
    with open(args.out, "w") as out:
        json.dump(spans, out)
    print(f"exported {len(spans)} spans over {args.protocol}", file=sys.stderr)


if __name__ == "__main__":
    main()
