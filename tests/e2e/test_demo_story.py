"""``make demo``'s story on a real local stack: three weeks through ``continuous_training`` under
``airflow standalone``, then the same again, which must add no model version and no Bento."""

from __future__ import annotations

import pytest

from airflow_mlops_provider.examples.churn_story import MODEL_NAME, tell
from airflow_mlops_provider.lineage import TAG_BENTO_TAG
from airflow_mlops_provider.promotion import TAG_DECISION

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


def test_three_weeks_then_the_same_weeks_again(stack, capsys):
    from mlflow import MlflowClient

    client = MlflowClient(stack.config.mlflow_url, registry_uri=stack.config.mlflow_url)
    assert tell(stack), capsys.readouterr().err
    week1, week2, week3 = _rows(capsys.readouterr().out)
    assert week1.startswith("week1-baseline-")
    assert "no champion yet" in week1
    assert "promoted" in week1
    assert "drift (" in week2
    assert "FAILED: days_since_last_login max_zero_fraction" in week3
    assert "not trained" in week3
    versions = _versions(client)
    # Week 1 became v1; week 2's challenger v2 was registered and decided on by the gates.
    assert sorted(versions) == ["1", "2"]
    assert versions["1"][TAG_DECISION] == "promoted"
    assert versions["2"][TAG_DECISION] in ("promoted", "rejected")
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert week3.split()[-2:] == [f"v{champion.version}", champion.tags[TAG_BENTO_TAG]]
    # The table is the decision log's: the command prints the same rows.
    from airflow_mlops_provider.decisions import summarize, table

    assert table(summarize(client, MODEL_NAME)).splitlines()[2:] == [week1, week2, week3]
    bentos = _bentos(stack)
    assert bentos, "no Bento was built"

    assert tell(stack), capsys.readouterr().err
    again = _rows(capsys.readouterr().out)
    assert ["skipped: already trained on this data" in row for row in again] == [True, True, False]
    assert "FAILED: days_since_last_login max_zero_fraction" in again[2]
    assert _versions(client).keys() == versions.keys()
    assert _bentos(stack) == bentos
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == champion.version
