"""Reads Threadline's span blocks with DuckDB (an independent Parquet reader) and prints, as
JSON: the span count, the services, one trace's spans in order, and attribute lookups by key
with DuckDB's JSON functions, as docs/storage.md shows them."""

import json
import sys

import duckdb

pattern, trace_id_hex = sys.argv[1], sys.argv[2]
con = duckdb.connect()
spans = con.execute(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchone()[0]
services = [r[0] for r in con.execute(
    f"SELECT DISTINCT service_name FROM read_parquet('{pattern}') ORDER BY 1").fetchall()]
trace = con.execute(
    f"""SELECT hex(span_id), name, kind, start_time_unix_nano, len(json_keys(attributes)),
               json_array_length(events), json_array_length(links)
        FROM read_parquet('{pattern}') WHERE hex(trace_id) = upper(?)
        ORDER BY start_time_unix_nano""", [trace_id_hex]).fetchall()
attrs = con.execute(
    f"""SELECT k, json_type(attributes, '$."' || k || '"'),
               json_extract(attributes, '$."' || k || '"')::VARCHAR
        FROM read_parquet('{pattern}'), UNNEST(json_keys(attributes)) AS t(k)
        WHERE hex(trace_id) = upper(?) ORDER BY start_time_unix_nano, k""",
    [trace_id_hex]).fetchall()
order = con.execute(
    f"""SELECT count(*) FROM read_parquet('{pattern}')
        WHERE attributes->>'$."order.id"' = 'order-' || ?""", ["2-7"]).fetchone()[0]
counters = [int(v) for v in con.execute(
    f"""SELECT sum(flags), sum(dropped_attributes_count), sum(dropped_events_count),
               sum(dropped_links_count), count(*) FILTER (WHERE status_code = 'error')
        FROM read_parquet('{pattern}')""").fetchone()]
print(json.dumps({"spans": spans, "services": services, "trace": trace, "attributes": attrs,
                  "order_spans": order, "counters": counters}, default=str))
