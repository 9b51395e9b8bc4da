"""Checks Threadline's OpenAPI document with independent tools: the document against the
OpenAPI 3.1 specification (openapi-spec-validator), then each response given on stdin (JSON
lines of {"schema": name, "body": ...}) against its component schema (jsonschema)."""

import json
import sys

import jsonschema
from openapi_spec_validator import validate

doc = json.loads(open(sys.argv[1]).read())
validate(doc)
checked = 0
for line in sys.stdin:
    item = json.loads(line)
    schema = {"$ref": f"#/components/schemas/{item['schema']}", "components": doc["components"]}
    jsonschema.validate(item["body"], schema, cls=jsonschema.Draft202012Validator)
    checked += 1
print(f"valid document, {checked} responses match their schemas")
