"""Regenerate helm/airflow-mlops/values.schema.json from values.yaml and its ``# --`` comments.

    .venv/bin/python helm/tools/generate_schema.py

Descriptions come from the comment above each key, types and defaults from the values themselves;
the constraints below (patterns, enums, bounds) are added by hand. tests/helm checks that the
schema and values.yaml agree, so change both together by running this.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "airflow-mlops"
#: Blocks whose keys are not ours to restrict (passed to the Airflow chart, or free-form).
FREE = {("airflow",), ("training", "gpuNodeSelector")}
CHILD_NAMES = {
    "requests": "Requests: what the scheduler reserves",
    "limits": "Limits: the most it may use",
    "cpu": "CPU (cores or millicores)",
    "memory": "Memory (bytes with a suffix, e.g. 512Mi)",
}
#: Helm validates with Go's RE2, which has no look-ahead: `latest` is excluded by `not`.
NOT_LATEST = {"minLength": 1, "not": {"enum": ["latest"]}}


def comments(lines: list[str]) -> dict[tuple[str, ...], str]:
    found: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    pending = None
    for line in lines:
        if m := re.match(r"^\s*# -- (.*)$", line):
            pending = m.group(1)
            continue
        if m := re.match(r"^(\s*)([A-Za-z0-9_]+):", line):
            indent = len(m.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, m.group(2)))
            if pending:
                found[tuple(k for _, k in stack)] = pending
            pending = None
    return found


def node(value: Any, path: tuple[str, ...], desc: dict[tuple[str, ...], str]) -> dict[str, Any]:
    kind = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
        type(None): "null",
    }
    description = desc.get(path) or CHILD_NAMES.get(path[-1]) or f"Node label {path[-1]!r} and its value"
    out: dict[str, Any] = {"description": description, "type": kind[type(value)], "default": value}
    if isinstance(value, dict):
        out["properties"] = {k: node(v, (*path, k), desc) for k, v in value.items()}
        out["additionalProperties"] = any(path[:i] in FREE for i in range(1, len(path) + 1))
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            out["items"] = {
                "type": "object",
                "properties": {k: {"type": "string", "description": f"{k} of the entry"} for k in value[0]},
                "required": list(value[0]),
                "additionalProperties": False,
            }
        else:
            out["items"] = {"type": "string"}
    return out


def constrain(props: dict[str, Any]) -> None:
    for comp in ("mlflow", "postgresql", "modelserver"):
        p = props[comp]["properties"]
        p["image"]["properties"]["tag"].update(NOT_LATEST)
        p["image"]["required"] = ["repository", "tag"]
        p["resources"]["required"] = ["requests", "limits"]
    props["airflow"]["properties"]["images"]["properties"]["airflow"]["properties"]["tag"].update(NOT_LATEST)
    props["airflow"]["properties"]["executor"]["enum"] = [
        "KubernetesExecutor",
        "CeleryExecutor",
        "CeleryKubernetesExecutor",
    ]
    props["airflow"]["properties"]["config"]["properties"]["mlops"]["properties"]["training_runtime"][
        "enum"
    ] = [
        "kubernetes",
        "local",
    ]
    for comp in ("mlflow", "modelserver"):
        p = props[comp]["properties"]
        p["service"]["properties"]["port"].update(minimum=1, maximum=65535)
        p["service"]["properties"]["type"]["enum"] = ["ClusterIP", "NodePort", "LoadBalancer"]
        p["replicas"]["minimum"] = 1
        p["runAsUser"]["minimum"] = 1
    props["mlflow"]["properties"]["workers"]["minimum"] = 1
    scaling = props["modelserver"]["properties"]["autoscaling"]["properties"]
    scaling["minReplicas"]["minimum"] = 1
    scaling["maxReplicas"]["minimum"] = 1
    scaling["targetCPUUtilizationPercentage"].update(minimum=1, maximum=100)
    props["training"]["properties"]["gpuResource"]["pattern"] = r"^[a-z0-9.-]+/[a-z0-9.-]+$"
    # The bounds the Bento's CaptureConfig enforces at start-up, refused here at install instead.
    capture = props["modelserver"]["properties"]["capture"]["properties"]
    capture["sampleRate"].update(type="number", minimum=0, maximum=1)
    capture["flushIntervalSeconds"].update(type="number", exclusiveMinimum=0)
    capture["flushRows"]["minimum"] = 1
    capture["maxBufferRows"]["minimum"] = 1
    for key in ("dropColumns", "hashColumns"):
        # The env var is comma-separated: a name with a comma would be split.
        capture[key]["items"].update(minLength=1, pattern=r"^[^,]+$")
        capture[key]["uniqueItems"] = True
    capture["hashSaltSecret"]["properties"]["key"]["minLength"] = 1
    persistence = capture["persistence"]["properties"]
    persistence["size"]["pattern"] = r"^[0-9]+(\.[0-9]+)?([KMGTPE]i|[kMGTPE])?$"
    # The Deployment runs several replicas and surges one in a rollout: no ReadWriteOncePod.
    persistence["accessModes"]["items"]["enum"] = ["ReadWriteOnce", "ReadWriteMany"]
    persistence["accessModes"].update(minItems=1, uniqueItems=True)
    # The bounds the Bento's ShadowConfig enforces; a null share keeps the Bento's packaged one.
    shadow = props["modelserver"]["properties"]["shadow"]["properties"]
    shadow["canaryShare"].update(type=["number", "null"], minimum=0, maximum=1)
    shadow["maxQueueRows"].update(type=["integer", "null"], minimum=1)


def main() -> None:
    text = (CHART / "values.yaml").read_text()
    desc = comments(text.splitlines())
    values = yaml.safe_load(text)
    props = {k: node(v, (k,), desc) for k, v in values.items()}
    constrain(props)
    schema = {
        "$schema": "https://json-schema.org/draft-07/schema#",
        "title": "airflow-mlops values",
        "type": "object",
        "additionalProperties": False,
        "properties": props,
    }
    (CHART / "values.schema.json").write_text(json.dumps(schema, indent=2) + "\n")


if __name__ == "__main__":
    main()
