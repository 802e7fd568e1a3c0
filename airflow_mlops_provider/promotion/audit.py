"""The audit trail: version tags, the decision record written with every decision, and its wording."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider import lineage

if TYPE_CHECKING:
    from mlflow import MlflowClient
from airflow_mlops_provider.promotion.common import (
    TAG_CHAMPION_METRICS,
    TAG_DAG_RUN,
    TAG_DECIDED_AT,
    TAG_DECISION,
    TAG_DRIFT_SUMMARY,
    TAG_EVALUATED_AGAINST,
    TAG_FAIRNESS,
    TAG_GATES,
    TAG_METRICS,
    TAG_REASONS,
    _tag_value,
    is_unreachable,
)


def set_version_tags(client: MlflowClient, name: str, version: str, tags: Mapping[str, Any]) -> None:
    """Set the tags that differ from the version's current ones (``None`` values are left out).

    MLflow has no batch call for version tags, and each write costs the server a look at the whole
    registered model, so unchanged values are not written again.
    """
    current = client.get_model_version(name, version).tags or {}
    for key, value in tags.items():
        if value is None:
            continue
        text = _tag_value(value)
        if current.get(key) != text:
            client.set_model_version_tag(name, version, key, text)


def lineage_tags(run_tags: Mapping[str, str] | None) -> dict[str, str]:
    """The run's provider tags worth copying to the version (lineage; evidence URIs included)."""
    return {k: v for k, v in (run_tags or {}).items() if k.startswith(lineage.TAG_PREFIX)}


def describe_decision(decision: Mapping[str, Any]) -> str:
    """Render a decision as the Markdown description of a model version."""
    lines = [
        f"**{decision.get('decision', 'unknown').upper()}** at {decision.get('decided_at', '')}",
        "",
        f"- candidate: `{decision.get('model_uri')}` (run `{decision.get('run_id')}`)",
        f"- evaluated against champion: {_v(decision.get('evaluated_against_version'))}",
        f"- evaluation data: `{decision.get('eval_data_uri')}` ({decision.get('eval_data_fingerprint')})",
        f"- DAG run: {decision.get('dag_id')} / {decision.get('dag_run_id')}",
    ]
    if decision.get("approval"):
        approval = decision["approval"]
        lines.append(
            f"- approval: {approval.get('decision')} by {approval.get('by')} at {approval.get('at')}"
        )
    if decision.get("champion_version"):
        lines.append(
            f"- champion: {_v(decision.get('champion_version'))}, previous_champion: "
            f"{_v(decision.get('previous_champion_version'))}"
        )
    lines += ["", "| gate | status | observed | required | detail |", "|---|---|---|---|---|"]
    for g in decision.get("gates", []):
        lines.append(f"| {g['gate']} | {g['status']} | {g['observed']} | {g['required']} | {g['detail']} |")
    if decision.get("reasons"):
        lines += ["", "Reasons:", *[f"- {r}" for r in decision["reasons"]]]
    return "\n".join(lines)


def _v(version: Any) -> str:
    return f"v{version}" if version else "none"


def record_decision(
    client: MlflowClient,
    name: str,
    version: str,
    decision: Mapping[str, Any],
    extra_tags: Mapping[str, Any] | None = None,
) -> None:
    """Write a decision to the model version: tags and a Markdown description."""
    run = "/".join(str(decision.get(k)) for k in ("dag_id", "dag_run_id", "task_id"))
    tags: dict[str, Any] = {
        TAG_DECISION: decision.get("decision"),
        TAG_DECIDED_AT: decision.get("decided_at"),
        TAG_GATES: {
            g["gate"]: f"{g['status']}: observed {g['observed']}, required {g['required']}"
            for g in decision.get("gates", [])
        }
        or None,
        TAG_METRICS: (decision.get("metrics") or {}).get("candidate"),
        TAG_CHAMPION_METRICS: (decision.get("metrics") or {}).get("champion"),
        TAG_FAIRNESS: (decision.get("metrics") or {}).get("fairness") or None,
        TAG_EVALUATED_AGAINST: decision.get("evaluated_against_version") or "none",
        TAG_REASONS: "; ".join(decision.get("reasons", [])) or None,
        lineage.TAG_EVAL_DATA_URI: decision.get("eval_data_uri"),
        lineage.TAG_EVAL_DATA_FINGERPRINT: decision.get("eval_data_fingerprint"),
        TAG_DAG_RUN: run if decision.get("dag_run_id") else None,
        TAG_DRIFT_SUMMARY: decision.get("drift_summary") or None,
        **(extra_tags or {}),
    }
    set_version_tags(client, name, version, tags)
    client.update_model_version(name, version, description=describe_decision(decision)[:20000])
    from airflow_mlops_provider.model_card import write_card

    try:
        write_card(client, name, version, decision)
    except Exception as err:
        if is_unreachable(err):
            raise
        # The decision stands and is recorded; a card that cannot be written is said, loudly.
        logging.getLogger(__name__).error("Could not write the model card of %s v%s: %s", name, version, err)
