"""The model card of a model version: what the system knows of it, and what only people know.

Written when a promotion decision is recorded (:func:`airflow_mlops_provider.promotion.record_decision`),
from the evidence already there: the training run's data, code, image and parameters (its
``mlops.*`` tags and params), the evaluation's metrics overall, per slice and per group (fairness),
the drift summary against the champion, every gate's result, the online comparison, the approval
and the decision. The fields only people know (intended use, limitations, owner) come from the DAG
(``ModelPromotionOperator(model_card={...})``); a missing one says so rather than being left out.

The card is logged as Markdown and HTML artifacts of the version's run
(``model_card/v<version>/model_card.{md,html}``), the version is tagged with their URI
(``mlops.model_card.uri``), the task links to it, and ``BentoPackageOperator`` bakes it into the
Bento, which serves it at ``/model_card``. Standard library only.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider import lineage

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: The fields only people know, given in the DAG.
HUMAN_FIELDS = ("intended_use", "limitations", "owner")
#: Model-version tag: the artifact URI of the card's directory.
TAG_MODEL_CARD_URI = "mlops.model_card.uri"
ARTIFACT_DIR = "model_card"
MARKDOWN_FILE = "model_card.md"
HTML_FILE = "model_card.html"
NOT_GIVEN = "not given"


def check_human_fields(fields: Mapping[str, Any] | None) -> dict[str, str]:
    """Return the people's fields as text, refusing unknown keys (a typo would be lost silently)."""
    fields = dict(fields or {})
    unknown = sorted(set(fields) - set(HUMAN_FIELDS))
    if unknown:
        raise ValueError(f"model_card: unknown field(s) {unknown}; allowed: {list(HUMAN_FIELDS)}")
    return {k: str(v).strip() for k, v in fields.items() if v is not None and str(v).strip()}


def build_card(
    decision: Mapping[str, Any],
    version_tags: Mapping[str, str],
    run_tags: Mapping[str, str],
    params: Mapping[str, str],
    human: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the card's content from a decision and the version's and its run's tags and params."""
    metrics = decision.get("metrics") or {}
    candidate = metrics.get("candidate") or {}
    tags = {**run_tags, **version_tags}
    people = check_human_fields(human if human is not None else decision.get("model_card"))
    return {
        "model": {
            "name": decision.get("registered_model_name"),
            "version": str(decision.get("version")),
            "run_id": decision.get("run_id"),
            "model_uri": decision.get("model_uri"),
            "task_type": tags.get(lineage.TAG_TASK_TYPE),
        },
        "intended_use": people.get("intended_use", NOT_GIVEN),
        "limitations": people.get("limitations", NOT_GIVEN),
        "owner": people.get("owner", NOT_GIVEN),
        "data": {
            "training_uri": tags.get(lineage.TAG_DATA_URI),
            "training_fingerprint": tags.get(lineage.TAG_DATA_FINGERPRINT),
            "evaluation_uri": decision.get("eval_data_uri"),
            "evaluation_fingerprint": decision.get("eval_data_fingerprint"),
            "evaluation_rows": metrics.get("rows"),
            "validation_status": tags.get(lineage.TAG_VALIDATION_STATUS),
            "validation_report_uri": tags.get(lineage.TAG_VALIDATION_REPORT_URI),
            "training_profile_uri": tags.get(lineage.TAG_TRAINING_PROFILE_URI),
            "training_profile": decision.get("training_profile"),
        },
        "code": {
            "code_version": tags.get(lineage.TAG_CODE_VERSION),
            "git_sha": tags.get(lineage.TAG_GIT_SHA),
            "entrypoint": tags.get(lineage.TAG_ENTRYPOINT),
            "image": tags.get(lineage.TAG_IMAGE),
            "runtime": tags.get(lineage.TAG_RUNTIME),
            "seed": tags.get(lineage.TAG_SEED),
            "trained_by": "/".join(
                str(tags[k]) for k in (lineage.TAG_DAG_ID, lineage.TAG_DAG_RUN_ID) if tags.get(k)
            )
            or None,
        },
        "parameters": dict(sorted(params.items())),
        "metrics": {
            "overall": candidate.get("overall") or {},
            "slices": candidate.get("slices") or {},
            "champion": ((metrics.get("champion") or {}).get("overall")) or None,
            "latency": metrics.get("latency"),
        },
        "fairness": metrics.get("fairness"),
        "drift": decision.get("drift_summary") or None,
        "gates": list(decision.get("gates") or []),
        "online": decision.get("online"),
        "approval": decision.get("approval"),
        "decision": {
            "decision": decision.get("decision"),
            "decided_at": decision.get("decided_at"),
            "evaluated_against_version": decision.get("evaluated_against_version"),
            "reasons": list(decision.get("reasons") or []),
            "dag_run": "/".join(str(decision.get(k)) for k in ("dag_id", "dag_run_id", "task_id"))
            if decision.get("dag_run_id")
            else None,
        },
    }


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _sections(card: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The card as (title, header, rows) tables, shared by both renderings."""
    model = card["model"]
    out: list[tuple[str, list[str], list[list[str]]]] = [
        (
            "Model",
            ["", ""],
            [
                ["registered model", _fmt(model["name"])],
                ["version", _fmt(model["version"])],
                ["kind", _fmt(model["task_type"])],
                ["run", _fmt(model["run_id"])],
                ["model URI", _fmt(model["model_uri"])],
                ["owner", card["owner"]],
                ["intended use", card["intended_use"]],
                ["limitations", card["limitations"]],
            ],
        ),
        (
            "Data",
            ["", ""],
            [[k.replace("_", " "), _fmt(v)] for k, v in card["data"].items() if k != "training_profile"]
            + [["training rows (profile)", _fmt((card["data"].get("training_profile") or {}).get("rows"))]],
        ),
        (
            "Training data profile",
            ["column", "null fraction", "min", "max", "mean", "distinct (est.)"],
            [
                [
                    c,
                    *(
                        _fmt(v)
                        for v in (s["null_fraction"], s["min"], s["max"], s["mean"], s["distinct_estimate"])
                    ),
                ]
                for c, s in sorted(
                    ((card["data"].get("training_profile") or {}).get("columns") or {}).items()
                )
            ],
        ),
        ("Code", ["", ""], [[k.replace("_", " "), _fmt(v)] for k, v in card["code"].items()]),
        ("Parameters", ["parameter", "value"], [[k, _fmt(v)] for k, v in card["parameters"].items()]),
    ]
    metrics = card["metrics"]
    champion = metrics.get("champion") or {}
    out.append(
        (
            "Metrics",
            ["metric", "this version", "champion"],
            [[m, _fmt(v), _fmt(champion.get(m))] for m, v in sorted(metrics["overall"].items())]
            + ([["latency", _fmt(metrics["latency"]), ""]] if metrics.get("latency") else []),
        )
    )
    out.append(
        (
            "Slices",
            ["slice", "rows", "metrics"],
            [
                [name, _fmt(s.get("rows")), _fmt(s.get("metrics"))]
                for name, s in sorted(metrics["slices"].items())
            ],
        )
    )
    fairness_rows = []
    for name, report in sorted((card.get("fairness") or {}).items()):
        for group, figures in sorted((report.get("groups") or {}).items()):
            gated = "gated" if group in (report.get("gated_groups") or []) else "reported only"
            fairness_rows.append([f"{name}: {group}", _fmt(figures.get("rows")), gated, _fmt(figures)])
        disparities = {
            k: report.get(k)
            for k in (
                "demographic_parity_difference",
                "demographic_parity_ratio",
                "equalized_odds_difference",
            )
        }
        fairness_rows.append(
            [f"{name}: disparities", "", "", _fmt({**disparities, **report.get("metric_differences", {})})]
        )
    out.append(("Fairness", ["group", "rows", "", "figures"], fairness_rows))
    out.append(("Drift against the champion", ["", ""], [["summary", _fmt(card.get("drift"))]]))
    out.append(
        (
            "Gates",
            ["gate", "status", "observed", "required", "detail"],
            [
                [
                    g["gate"],
                    g["status"],
                    _fmt(g.get("observed")),
                    _fmt(g.get("required")),
                    _fmt(g.get("detail")),
                ]
                for g in card["gates"]
            ],
        )
    )
    online = card.get("online") or {}
    if online:
        keys = (
            "outcome",
            "metric",
            "test",
            "pairs",
            "champion",
            "challenger",
            "effect",
            "ci_low",
            "ci_high",
            "p_value",
        )
        out.append(("Online comparison", ["", ""], [[k, _fmt(online.get(k))] for k in keys]))
    approval = card.get("approval") or {}
    out.append(
        (
            "Approval",
            ["", ""],
            [[k, _fmt(approval.get(k))] for k in ("decision", "by", "at", "comment")]
            if approval
            else [["", "none asked"]],
        )
    )
    decision = card["decision"]
    out.append(
        (
            "Decision",
            ["", ""],
            [[k.replace("_", " "), _fmt(v)] for k, v in decision.items()],
        )
    )
    return out


def _title(card: Mapping[str, Any]) -> str:
    model = card["model"]
    return f"Model card: {model['name']} v{model['version']} ({card['decision'].get('decision')})"


def render_markdown(card: Mapping[str, Any]) -> str:
    """The card as Markdown: a title, then one table per section."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"# {_title(card)}", ""]
    for title, header, rows in _sections(card):
        lines += [f"## {title}", ""]
        if not rows:
            lines += ["none", ""]
            continue
        lines.append("| " + " | ".join(cell(h) for h in header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def render_html(card: Mapping[str, Any]) -> str:
    """The card as a self-contained HTML page (every value escaped)."""
    e = html.escape
    parts = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{e(_title(card))}</title>',
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
        "table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;"
        "text-align:left;vertical-align:top}</style></head><body>",
        f"<h1>{e(_title(card))}</h1>",
    ]
    for title, header, rows in _sections(card):
        parts.append(f"<h2>{e(title)}</h2>")
        if not rows:
            parts.append("<p>none</p>")
            continue
        parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def profile_summary(client: MlflowClient, uri: str | None, run_id: str) -> dict[str, Any] | None:
    """The training profile's summary (rows, and per column its type, nulls and range), or ``None``.

    Read from the ``summary.json`` written beside the profile: a local path or ``file:`` URI, or an
    artifact of the run (``runs:/`` or a relative path).
    """
    import tempfile
    import urllib.parse
    from pathlib import Path

    from airflow_mlops_provider.data.profiles import PROFILE_FILE, SUMMARY_FILE

    if not uri:
        return None
    base = uri.rstrip("/")
    base = base[: -len(PROFILE_FILE)].rstrip("/") if base.endswith(PROFILE_FILE) else base
    parsed = urllib.parse.urlsplit(base)
    if parsed.scheme in ("", "file") and (base.startswith("/") or parsed.scheme == "file"):
        path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else base, SUMMARY_FILE)
        text = path.read_text() if path.is_file() else None
    else:
        artifact = base.removeprefix(f"runs:/{run_id}/") if base.startswith("runs:/") else base
        with tempfile.TemporaryDirectory(prefix="model-card-profile-") as tmp:
            text = Path(client.download_artifacts(run_id, f"{artifact}/{SUMMARY_FILE}", tmp)).read_text()
    if text is None:
        return None
    raw = json.loads(text)
    columns = {}
    for name, stats in (raw.get("column_stats") or {}).items():
        count = stats.get("count") or 0
        columns[name] = {
            "null_fraction": round(stats.get("null_count", 0) / count, 4) if count else None,
            "min": stats.get("min"),
            "max": stats.get("max"),
            "mean": stats.get("mean"),
            "distinct_estimate": stats.get("distinct_estimate"),
        }
    return {"rows": raw.get("rows"), "files": raw.get("files"), "columns": columns}


def write_card(client: MlflowClient, name: str, version: str, decision: Mapping[str, Any]) -> str | None:
    """Build the version's card from ``decision`` and what MLflow holds; log it; return its URI.

    ``None`` when the version has no run to log the artifacts to.
    """
    mv = client.get_model_version(name, version)
    if not mv.run_id:
        return None
    run = client.get_run(mv.run_id)
    tags = {**run.data.tags, **(mv.tags or {})}
    try:
        profile = profile_summary(client, tags.get(lineage.TAG_TRAINING_PROFILE_URI), mv.run_id)
    except Exception as err:  # the card says so rather than failing
        profile = {"error": f"the training profile's summary cannot be read: {type(err).__name__}: {err}"}
    card = build_card(
        {**decision, "training_profile": profile},
        dict(mv.tags or {}),
        dict(run.data.tags),
        dict(run.data.params),
    )
    directory = f"{ARTIFACT_DIR}/v{version}"
    client.log_text(mv.run_id, render_markdown(card), f"{directory}/{MARKDOWN_FILE}")
    client.log_text(mv.run_id, render_html(card), f"{directory}/{HTML_FILE}")
    client.log_text(mv.run_id, json.dumps(card, indent=2, default=str), f"{directory}/model_card.json")
    uri = f"runs:/{mv.run_id}/{directory}"
    client.set_model_version_tag(name, version, TAG_MODEL_CARD_URI, uri)
    return uri
