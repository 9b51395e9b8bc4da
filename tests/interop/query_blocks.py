"""Reads Threadline's span blocks with DuckDB (an independent Parquet reader) and prints, as
JSON: the span count, the services, one trace's spans in order, and an attribute lookup
through UNNEST, as docs/storage.md shows it."""

import json
import sys

import duckdb

pattern, trace_id_hex = sys.argv[1], sys.argv[2]
con = duckdb.connect()
spans = con.execute(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchone()[0]
services = [r[0] for r in con.execute(
    f"SELECT DISTINCT service_name FROM read_parquet('{pattern}') ORDER BY 1").fetchall()]
trace = con.execute(
    f"""SELECT hex(span_id), name, kind, start_time_unix_nano, len(attributes), len(events), len(links)
        FROM read_parquet('{pattern}') WHERE hex(trace_id) = upper(?)
        ORDER BY start_time_unix_nano""", [trace_id_hex]).fetchall()
attrs = con.execute(
    f"""SELECT a.key, a.type, a.str, a.int, a.double, a.bool
        FROM read_parquet('{pattern}'), UNNEST(attributes) AS t(a)
        WHERE hex(trace_id) = upper(?) ORDER BY start_time_unix_nano, a.key""", [trace_id_hex]).fetchall()
print(json.dumps({"spans": spans, "services": services, "trace": trace, "attributes": attrs}, default=str))
