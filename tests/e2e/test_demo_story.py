"""``make demo``'s story on a real local stack: three weeks through ``continuous_training`` under
``airflow standalone``, a fourth of the champion served, monitored and retrained on decay, then the
same again, which must add no model version and no Bento."""

from __future__ import annotations

import httpx
import pytest

from airflow_mlops_provider.lineage import TAG_BENTO_TAG
from airflow_mlops_provider.model_card import TAG_MODEL_CARD_URI
from airflow_mlops_provider.promotion import TAG_DECISION
from mlops_demo.churn_story import MODEL_NAME, tell

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]


def _rows(out: str) -> list[str]:
    """The table's week rows from what the story printed."""
    table = out[out.index("\nrun  ") + 1 :].split("\n\n")[0].splitlines()
    assert table[1].startswith("----")
    return table[2:]


def _versions(client) -> dict[str, dict[str, str]]:
    return {v.version: dict(v.tags) for v in client.search_model_versions(f"name = '{MODEL_NAME}'")}


def _bentos(stack) -> list[str]:
    bentos = stack.config.home / "bentoml" / "bentos" / MODEL_NAME
    return sorted(p.name for p in bentos.iterdir() if p.name != "latest") if bentos.is_dir() else []


def _captured(stack, version: str) -> int:
    from airflow_mlops_provider.monitoring.captures import read_captures

    uri = str(stack.config.home / "capture")
    return read_captures(uri, MODEL_NAME, version=version, columns=["request_id"]).num_rows


def test_four_weeks_then_the_same_weeks_again(stack, capsys):
    from mlflow import MlflowClient

    client = MlflowClient(stack.config.mlflow_url, registry_uri=stack.config.mlflow_url)
    assert tell(stack), capsys.readouterr().err
    week1, week2, week3, monitor, retrain = _rows(capsys.readouterr().out)
    assert week1.startswith("week1-baseline-")
    assert "no champion yet" in week1
    assert "promoted" in week1
    assert "drift (" in week2
    assert "FAILED: days_since_last_login max_zero_fraction" in week3
    assert "not trained" in week3
    # Week 4: the served champion's customers show no drift, but their outcomes show decay.
    served = week3.split()[-2].removeprefix("v")
    assert monitor.startswith("week4-monitor-")
    assert "no_drift" in monitor
    assert f"degraded: v{served} roc_auc" in monitor
    assert "retraining scheduled" in monitor
    assert _captured(stack, served) == 3_000
    # ... and the run its asset event scheduled retrained, promoted and packaged a new champion.
    versions = _versions(client)
    new = str(max(int(v) for v in versions))
    assert versions[new][TAG_DECISION] == "promoted"
    assert "promoted" in retrain
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.version == new != served
    assert retrain.split()[-2:] == [f"v{new}", champion.tags[TAG_BENTO_TAG]]
    assert stack.services()["bento"]["answering"], "the new champion's Bento is served"
    # The champion has a model card, and its Bento serves it.
    assert champion.tags[TAG_MODEL_CARD_URI].startswith(f"runs:/{champion.run_id}/model_card/v{new}")
    card = httpx.get(f"{stack.config.bento_url}/model_card/", timeout=30)
    assert card.status_code == 200
    assert f"Model card: {MODEL_NAME} v{new} (promoted)" in card.text
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(champion.run_id, f"model_card/v{new}/model_card.json", tmp)
        card_json = json.loads(Path(path).read_text())
    data = card_json["data"]
    for key in ("training_fingerprint", "evaluation_fingerprint", "evaluation_rows"):
        assert data[key], key
    assert data["training_profile"]["rows"] > 0
    assert "tenure" in data["training_profile"]["columns"]
    assert card_json["parameters"]
    assert card_json["code"]["entrypoint"]
    assert card_json["metrics"]["overall"]["roc_auc"]
    assert card_json["metrics"]["slices"]["month_to_month"]["rows"]
    assert set(card_json["fairness"]["senior_citizen"]["groups"]) == {"0", "1"}
    assert {g["gate"] for g in card_json["gates"]} >= {"fairness:senior_citizen:roc_auc_difference"}
    assert card_json["decision"]["decision"] == "promoted"
    # The table is the decision log's: the command prints the same rows.
    from airflow_mlops_provider.decisions import summarize, table

    assert table(summarize(client, MODEL_NAME)).splitlines()[2:] == [week1, week2, week3, monitor, retrain]
    bentos = _bentos(stack)
    assert bentos, "no Bento was built"

    assert tell(stack), capsys.readouterr().err
    again = _rows(capsys.readouterr().out)
    assert ["skipped: already trained on this data" in row for row in again[:3]] == [True, True, False]
    assert "FAILED: days_since_last_login max_zero_fraction" in again[2]
    # The retrained champion is right about these customers: no decay, no retraining.
    assert len(again) == 4
    assert f"ok: v{new} roc_auc" in again[3]
    assert _versions(client).keys() == versions.keys()
    assert _bentos(stack) == bentos
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == new
