"""Parses a Prometheus text exposition from stdin with the reference Python client's parser
(independent of Threadline) and prints every sample as JSON lines: name, labels, value."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = list(text_string_to_metric_families(sys.stdin.read()))
for family in families:
    for s in family.samples:
        print(json.dumps({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value}))
