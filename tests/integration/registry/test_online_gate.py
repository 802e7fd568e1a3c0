"""The online gate against the real MLflow registry, on shadow traffic written by the real capture writer.

The champion (v1) and the challenger (v2, evaluated offline and awaiting a decision) are real model
versions; the traffic is generated, so that each test decides how much better the challenger truly is.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_mlops_provider import lineage
from airflow_mlops_provider import promotion as p
from airflow_mlops_provider.exceptions import PromotionConflict, PromotionRejected
from airflow_mlops_provider.operators.registry import ModelPromotionCommitOperator
from airflow_mlops_provider.operators.shadow import (
    TAG_ONLINE_EVIDENCE,
    OnlineGateOperator,
    ShadowWithdrawOperator,
)
from tests.integration.registry.conftest import FAST_LEASE, make_context
from tests.integration.registry.test_promotion import aliases, new_name, promote, promotion, tags
from tests.unit.monitoring.test_online import write_traffic

pytestmark = pytest.mark.timeout(600)

GATES = {
    "thresholds": ["roc_auc >= 0.6"],
    "online": {"metric": "roc_auc", "min_pairs": 500, "max_wait_hours": 72},
    "evidence": True,
}
#: The first champion's gates: the same, less the online gate (there is no champion to shadow).
FIRST = {k: v for k, v in GATES.items() if k != "online"}


@pytest.fixture(scope="module")
def shadowed(trained: Any) -> dict[str, Any]:
    """v1 the champion, v2 evaluated offline (``commit=False``) and so the challenger."""
    name = new_name()
    promote(trained, name, "baseline", gates=FIRST)
    evaluation = promotion(trained, name, "better", gates=GATES, commit=False).execute(make_context())
    assert evaluation["decision"] == "awaiting_approval"
    return {"name": name, "evaluation": evaluation, "champion": "1", "challenger": evaluation["version"]}


def online_gate(
    shadowed: dict[str, Any], tmp_path: Path, signals: tuple[float, float], labelled: int, **kwargs: Any
) -> tuple[OnlineGateOperator, dict[str, Any]]:
    """Write shadow traffic and its labels; return the gate operator over them and its context."""
    at = kwargs.pop("at", datetime(2026, 3, 2, 12, tzinfo=timezone.utc))
    labels = write_traffic(
        tmp_path / "capture",
        1200,
        labelled,
        *signals,
        model=shadowed["name"],
        versions=(shadowed["champion"], shadowed["challenger"]),
        at=at,
    )
    pq.write_table(labels, tmp_path / "labels.parquet")
    op = OnlineGateOperator(
        task_id="online_gate",
        registered_model_name=shadowed["name"],
        labels_uri=str(tmp_path / "labels.parquet"),
        capture_uri=str(tmp_path / "capture"),
        since=at - timedelta(hours=1),
        gates=GATES,
        evaluation_task_id="evaluate",
        **kwargs,
    )
    return op, make_context("online_gate", {"evaluate": shadowed["evaluation"]})


def test_a_truly_better_challenger_passes_with_its_evidence_on_the_version(shadowed, client, tmp_path):
    # Through the sensor's own execute(), looking once (the pairs are all there).
    op, context = online_gate(shadowed, tmp_path, (1.0, 1.6), labelled=1000, mode="poke", poke_interval=1)
    decision = op.execute(context)
    assert op.timeout >= 72 * 3600  # a day beyond the gate's max_wait_hours
    assert decision["decision"] == "awaiting_approval"
    online = [g for g in decision["gates"] if g["gate"] == "online:roc_auc"]
    assert [g["status"] for g in online] == ["passed"]
    evidence = decision["online"]
    assert evidence["outcome"] == "promote"
    assert evidence["pairs"] == 1000
    assert evidence["counts"]["champion_predictions"] == 1200
    assert evidence["effect"] > 0
    assert evidence["ci_low"] > 0
    assert evidence["p_value"] < 0.05
    version_tags = tags(client, shadowed["name"], shadowed["challenger"])
    assert '"outcome": "promote"' in version_tags[TAG_ONLINE_EVIDENCE]
    assert "online:roc_auc" in version_tags[p.TAG_GATES]
    # Judged, not promoted: the champion is still v1 until the commit.
    assert aliases(client, shadowed["name"])[p.CHAMPION] == shadowed["champion"]


@pytest.mark.parametrize(
    "signals",
    [pytest.param((1.0, 1.0), id="equal"), pytest.param((1.6, 1.0), id="worse")],
)
def test_an_equal_or_worse_challenger_is_rejected_and_the_champion_untouched(
    shadowed, client, tmp_path, signals
):
    op, context = online_gate(shadowed, tmp_path, signals, labelled=1000)
    with pytest.raises(PromotionRejected, match="online gate reject") as err:
        op.poke(context)
    assert err.value.decision["online"]["outcome"] == "reject"
    version_tags = tags(client, shadowed["name"], shadowed["challenger"])
    assert version_tags[p.TAG_DECISION] == "rejected"
    assert '"outcome": "reject"' in version_tags[TAG_ONLINE_EVIDENCE]
    assert aliases(client, shadowed["name"])[p.CHAMPION] == shadowed["champion"]


def test_too_few_labels_waits_and_after_the_maximum_wait_is_insufficient(shadowed, client, tmp_path):
    recent = datetime.now(timezone.utc) - timedelta(hours=2)
    op, context = online_gate(shadowed, tmp_path / "recent", (1.0, 1.6), labelled=100, at=recent)
    before = tags(client, shadowed["name"], shadowed["challenger"]).get(TAG_ONLINE_EVIDENCE)
    assert op.poke(context) is False  # 100 pairs of 500, 2 hours of 72: keep waiting
    assert tags(client, shadowed["name"], shadowed["challenger"]).get(TAG_ONLINE_EVIDENCE) == before

    # The same shortfall, three days after the shadow started: refused, fail closed.
    op, context = online_gate(shadowed, tmp_path / "old", (1.0, 1.6), labelled=100, on_reject="return")
    result = op.poke(context)
    assert result.is_done
    assert result.xcom_value["decision"] == "rejected"
    assert result.xcom_value["online"]["outcome"] == "insufficient"
    assert result.xcom_value["online"]["reason"] == "100 labelled pairs, 500 needed"
    assert aliases(client, shadowed["name"])[p.CHAMPION] == shadowed["champion"]


def test_a_champion_that_moved_during_the_shadow_voids_the_comparison(shadowed, client, tmp_path):
    op, context = online_gate(shadowed, tmp_path, (1.0, 1.6), labelled=1000)
    client.set_registered_model_alias(shadowed["name"], p.CHAMPION, shadowed["challenger"])
    try:
        with pytest.raises(PromotionConflict, match="moved from v1"):
            op.poke(context)
    finally:
        client.set_registered_model_alias(shadowed["name"], p.CHAMPION, shadowed["champion"])


def test_commit_after_the_online_gate_promotes_and_withdrawal_after_a_reject_keeps_the_champion(
    trained, client, tmp_path
):
    name = new_name()
    promote(trained, name, "baseline", gates=FIRST)
    for attempt, label, signals in (
        ("rejected", "better", (1.0, 1.0)),
        ("promoted", "better_too", (1.0, 1.6)),
    ):
        evaluation = promotion(trained, name, label, gates=GATES, commit=False).execute(make_context())
        challenger = evaluation["version"]
        shadowed = {"name": name, "evaluation": evaluation, "champion": "1", "challenger": challenger}
        op, context = online_gate(shadowed, tmp_path / attempt, signals, labelled=1000, on_reject="return")
        decision = op.poke(context).xcom_value
        if attempt == "rejected":
            assert decision["decision"] == "rejected"
        else:
            # The offline evaluation alone does not pass gates that declare an online gate.
            offline = ModelPromotionCommitOperator(
                task_id="commit", evaluation_task_id="evaluate", lease=FAST_LEASE
            )
            with pytest.raises(PromotionRejected, match="has not judged it"):
                offline.execute(make_context("commit", {"evaluate": evaluation}))
            assert aliases(client, name)[p.CHAMPION] == "1"
            commit = ModelPromotionCommitOperator(
                task_id="commit", evaluation_task_id="online_gate", lease=FAST_LEASE
            )
            assert commit.execute(make_context("commit", {"online_gate": decision}))["decision"] == "promoted"
        withdrawn = ShadowWithdrawOperator(
            task_id="withdraw", registered_model_name=name, version_task_id="online_gate"
        )
        ended = withdrawn.execute(make_context("withdraw", {"online_gate": decision}))
        assert ended["outcome"] == ("withdrawn" if attempt == "rejected" else "promoted")
        state = aliases(client, name)
        if attempt == "rejected":
            assert state[p.CHAMPION] == "1"
            assert p.CHALLENGER not in state
        else:
            assert state[p.CHAMPION] == challenger
            assert state[p.PREVIOUS_CHAMPION] == "1"
        assert tags(client, name, challenger)[lineage.TAG_SHADOW_OUTCOME] == ended["outcome"]
