"""Reads a schemathesis ndjson report: prints, for every documented operation, how many of its
calls were answered 2xx (by phase), and fails when an operation with a path id never was
(undocumented methods, which the fuzzer also tries, are left out).

Usage: python3 .ci/schemathesis-coverage.py OPENAPI.json REPORT.ndjson
"""

import collections
import json
import sys

with open(sys.argv[1], encoding="utf-8") as document:
    paths = json.load(document)["paths"]
documented = {
    f"{method.upper()} {path}"
    for path, item in paths.items()
    for method in item
    if method in ("get", "put", "post", "patch", "delete", "head", "options", "trace")
}

answered = collections.defaultdict(collections.Counter)
calls = collections.Counter({label: 0 for label in documented})
with open(sys.argv[2], encoding="utf-8") as report:
    for line in report:
        event = json.loads(line)
        scenario = event.get("ScenarioFinished")
        if not scenario:
            continue
        recorder = scenario["recorder"]
        for case_id, node in recorder.get("cases", {}).items():
            interaction = recorder.get("interactions", {}).get(case_id)
            if not interaction or not interaction.get("response"):
                continue
            case = node["value"]
            label = f"{case['method']} {case['path']}"
            if label not in documented:
                continue
            calls[label] += 1
            if 200 <= interaction["response"]["status_code"] < 300:
                answered[label][scenario["phase"]] += 1

missing = []
for label in sorted(calls):
    by_phase = ", ".join(f"{phase} {count}" for phase, count in sorted(answered[label].items()))
    print(f"{label:50s} {calls[label]:5d} calls, 2xx: {by_phase or 'none'}")
    if "{" in label and not answered[label]:
        missing.append(label)
if missing:
    print("error: never answered 2xx: " + ", ".join(missing), file=sys.stderr)
    sys.exit(1)
