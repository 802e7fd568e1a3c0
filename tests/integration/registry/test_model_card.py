"""The model card: written with every decision from what the registry knows, rendered, linked."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_mlops_provider import lineage
from airflow_mlops_provider.model_card import HTML_FILE, MARKDOWN_FILE, NOT_GIVEN, TAG_MODEL_CARD_URI
from airflow_mlops_provider.operators.registry import ModelApprovalOperator, ModelPromotionCommitOperator
from tests.integration.registry.conftest import FAST_LEASE, make_context
from tests.integration.registry.test_fairness_gate import FAIR
from tests.integration.registry.test_promotion import new_name, promote, tags

pytestmark = pytest.mark.timeout(600)

PEOPLE = {
    "intended_use": "Rank customers for retention calls",
    "limitations": "Trained on one market",
    "owner": "churn-team@example.com",
}
GATES = {
    **FAIR,
    "slices": [{"name": "two_year", "where": 'contract == "two-year"', "thresholds": ["roc_auc >= 0.5"]}],
}


def card_files(client, name: str, version: str, tmp_path: Path) -> tuple[str, str, dict]:
    uri = tags(client, name, version)[TAG_MODEL_CARD_URI]
    run_id, _, directory = uri.removeprefix("runs:/").partition("/")
    texts = [
        Path(client.download_artifacts(run_id, f"{directory}/{f}", str(tmp_path))).read_text()
        for f in (MARKDOWN_FILE, HTML_FILE, "model_card.json")
    ]
    return texts[0], texts[1], json.loads(texts[2])


def test_an_approved_promotion_writes_a_card_with_every_item(trained, client, tmp_path):
    name = new_name()
    first = promote(trained, name, "baseline", gates=FAIR)
    # The first champion's card: no approval asked, and nobody said what it is for.
    _, _, card = card_files(client, name, first["version"], tmp_path / "first")
    assert card["owner"] == card["intended_use"] == NOT_GIVEN
    assert card["approval"] is None

    decision = promote(
        trained,
        name,
        "better",
        gates=GATES,
        commit=False,
        task_id="evaluate",
        drift_summary={"psi": 0.02},
        model_card=PEOPLE,
    )
    approve = ModelApprovalOperator(task_id="approve", evaluation_task_id="evaluate")
    at = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
    answer = approve.execute_complete(
        make_context("approve", {"evaluate": decision}),
        {
            "chosen_options": ["Approve"],
            "params_input": {"comment": "fairness figures reviewed"},
            "responded_at": at,
            "responded_by_user": {"id": "7", "name": "ana"},
        },
    )
    commit = ModelPromotionCommitOperator(
        task_id="commit", evaluation_task_id="evaluate", approval_task_id="approve", lease=FAST_LEASE
    )
    context = make_context("commit", {"evaluate": decision, "approve": answer})
    assert commit.execute(context)["decision"] == "promoted"
    version = decision["version"]
    markdown, page, card = card_files(client, name, version, tmp_path / "second")

    run = client.get_run(trained.runs["better"]["run_id"])
    # What people said, from the DAG.
    assert {k: card[k] for k in PEOPLE} == PEOPLE
    # Data: URIs, fingerprints, rows.
    assert card["data"]["evaluation_uri"] == str(trained.eval_csv)
    assert card["data"]["evaluation_fingerprint"] == lineage.data_fingerprint(trained.eval_csv)
    assert card["data"]["training_fingerprint"] == run.data.tags[lineage.TAG_DATA_FINGERPRINT]
    assert card["data"]["evaluation_rows"] == 400
    assert card["data"]["validation_status"] == "passed"
    # Code and lineage, parameters, metrics overall and per slice, fairness, drift.
    assert card["code"]["trained_by"] is None or "train_churn" in card["code"]["trained_by"]
    assert card["parameters"] == dict(sorted(run.data.params.items()))
    assert card["metrics"]["overall"]["roc_auc"] == decision["metrics"]["candidate"]["overall"]["roc_auc"]
    assert card["metrics"]["champion"]["roc_auc"] == decision["metrics"]["champion"]["overall"]["roc_auc"]
    assert (
        card["metrics"]["slices"]["two_year"]["rows"]
        == decision["metrics"]["candidate"]["slices"]["two_year"]["rows"]
    )
    assert set(card["fairness"]["contract"]["groups"]) == {"month-to-month", "two-year"}
    assert card["drift"] == {"psi": 0.02}
    # Every gate, the approval (who, when, comment) and the decision.
    assert [g["gate"] for g in card["gates"]] == [g["gate"] for g in decision["gates"]]
    assert card["approval"] == {
        "decision": "approved",
        "by": "ana",
        "at": at.isoformat(),
        "comment": "fairness figures reviewed",
    }
    assert card["decision"]["decision"] == "promoted"
    assert card["decision"]["evaluated_against_version"] == first["version"]
    # Both renderings carry it.
    for text in (markdown, page):
        assert f"Model card: {name} v{version} (promoted)" in text
        assert "Rank customers for retention calls" in text
        assert "fairness figures reviewed" in text
        assert "fairness:contract:roc_auc_difference" in text
    assert page.startswith("<!doctype html>")
    assert "<td>churn-team@example.com</td>" in page
    assert "| owner | churn-team@example.com |" in markdown
    # The task links to it.
    assert (
        context["ti"]
        .pushed["mlops_model_card_url"]
        .endswith(f"/artifacts/model_card/v{version}/model_card.html")
    )


def test_unknown_card_fields_fail_the_dag_file():
    from airflow_mlops_provider.operators.registry import ModelPromotionOperator

    with pytest.raises(ValueError, match=r"unknown field\(s\) \['intended_usage'\]"):
        ModelPromotionOperator(
            task_id="promote",
            candidate="run",
            registered_model_name="churn",
            eval_data_uri="/data/eval.csv",
            target_column="churned",
            gates=FAIR,
            model_card={"intended_usage": "typo"},
        )
