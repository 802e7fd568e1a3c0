"""Gated promotion, rollback, approval and the version sensor against a real MLflow server on loopback.

Operators run through ``op.execute(context)`` with a minimal context (XCom and identity); the human
approval is driven by calling ``ModelApprovalOperator.execute_complete`` with the events Airflow's
API server or scheduler would send (approve, reject, timeout), not by a real HITL round trip.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_mlops_provider import promotion as p
from airflow_mlops_provider.exceptions import (
    MlflowConnectionError,
    MlopsProviderError,
    PromotionConflict,
    PromotionRejected,
)
from airflow_mlops_provider.lineage import TAG_TASK_TYPE
from airflow_mlops_provider.links.mlflow import XCOM_MODEL_VERSION_URL, XCOM_RUN_URL
from airflow_mlops_provider.operators.registry import (
    ModelApprovalOperator,
    ModelPromotionCommitOperator,
    ModelPromotionOperator,
    ModelRollbackOperator,
)
from airflow_mlops_provider.processes import free_port
from airflow_mlops_provider.sensors.registry import ModelVersionSensor
from airflow_mlops_provider.triggers.registry import ModelVersionTrigger
from tests.integration.registry.conftest import FAST_LEASE, FEATURES, make_context

pytestmark = pytest.mark.integration

GATES = {
    "thresholds": ["roc_auc >= 0.70"],
    "no_regression": [{"metric": "roc_auc", "tolerance": 0.01}],
    "evidence": True,
}


def new_name() -> str:
    return f"churn-{uuid.uuid4().hex[:8]}"


def promotion(
    trained: Any, name: str, label: str, gates: Any = None, **kwargs: Any
) -> ModelPromotionOperator:
    return ModelPromotionOperator(
        task_id=kwargs.pop("task_id", "promote"),
        candidate=trained.runs[label],
        registered_model_name=name,
        eval_data_uri=str(trained.eval_csv),
        target_column="churned",
        feature_columns=FEATURES,
        gates=gates or GATES,
        lease=FAST_LEASE,
        **kwargs,
    )


def promote(trained: Any, name: str, label: str, gates: Any = None, **kwargs: Any) -> dict[str, Any]:
    return promotion(trained, name, label, gates, **kwargs).execute(make_context())


def aliases(client: Any, name: str) -> dict[str, str]:
    return p.read_state(client, name).aliases


def tags(client: Any, name: str, version: str) -> dict[str, str]:
    return dict(client.get_model_version(name, version).tags)


@pytest.fixture(scope="module")
def incumbent(trained: Any) -> dict[str, Any]:
    """A model whose champion is the better model (v2), with the baseline (v1) as previous champion."""
    name = new_name()
    first = promote(trained, name, "baseline")
    context = make_context()
    second = promotion(trained, name, "better").execute(context)
    return {"name": name, "first": first, "second": second, "context": context}


def test_first_model_is_promoted_on_absolute_gates_alone(incumbent):
    first = incumbent["first"]
    assert first["decision"] == "promoted"
    assert (first["version"], first["champion_version"], first["previous_champion_version"]) == (
        "1",
        "1",
        None,
    )
    gates = {g["gate"]: g["status"] for g in first["gates"]}
    assert gates["no_regression:roc_auc"] == "skipped"
    assert gates["threshold:roc_auc"] == "passed"
    assert gates["evidence:validation_report"] == "passed"


def test_better_candidate_is_promoted_and_the_decision_recorded(incumbent, client, mlflow_server, trained):
    second, name = incumbent["second"], incumbent["name"]
    assert second["decision"] == "promoted"
    assert (second["version"], second["champion_version"], second["previous_champion_version"]) == (
        "2",
        "2",
        "1",
    )
    cand = second["metrics"]["candidate"]["overall"]["roc_auc"]
    champ = second["metrics"]["champion"]["overall"]["roc_auc"]
    assert cand > champ
    assert aliases(client, name) == {"champion": "2", "previous_champion": "1", "challenger": "2"}
    v2 = tags(client, name, "2")
    assert v2[p.TAG_DECISION] == "promoted"
    assert v2[p.TAG_EVALUATED_AGAINST] == "1"
    assert v2[p.TAG_PREVIOUS_CHAMPION] == "1"
    assert json.loads(v2[p.TAG_GATES])["no_regression:roc_auc"].startswith("passed: observed 0.")
    assert v2[p.TAG_DAG_RUN] == "registry_test/manual__test/promote"
    assert json.loads(v2[p.TAG_METRICS])["overall"]["roc_auc"] == pytest.approx(cand)
    # Lineage copied from the training run.
    assert v2["mlops.dag_id"] == "train_churn"
    assert v2["mlops.data_fingerprint"].startswith("sha256:")
    assert v2["mlops.eval_data_fingerprint"].startswith("sha256:")
    assert "PROMOTED" in client.get_model_version(name, "2").description
    v1 = tags(client, name, "1")
    assert (v1[p.TAG_SUPERSEDED_BY], v1[p.TAG_STATUS]) == ("2", "previous_champion")
    # Extra links point at the MLflow UI.
    pushed = incumbent["context"]["ti"].pushed
    assert pushed[XCOM_MODEL_VERSION_URL] == f"{mlflow_server.url}/#/models/{name}/versions/2"
    assert pushed[XCOM_RUN_URL].endswith(f"/runs/{trained.runs['better']['run_id']}")


def test_rerun_of_a_promoted_candidate_adds_no_version(incumbent, client, trained):
    name = incumbent["name"]
    again = promote(trained, name, "better")
    assert (again["decision"], again["version"]) == ("promoted", "2")
    run_id = trained.runs["better"]["run_id"]
    assert len(client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")) == 1


SLICE_GATES = {
    "thresholds": ["roc_auc >= 0.5"],
    "slices": [
        {"name": "month_to_month", "where": 'contract == "month-to-month"', "thresholds": ["roc_auc >= 0.75"]}
    ],
}
LATENCY_GATES = {
    "thresholds": ["roc_auc >= 0.5"],
    "latency": {"p95_ms": 30, "sample_rows": 50, "repeats": 5, "warmup": 1},
}


@pytest.mark.parametrize(
    ("label", "gates", "gate", "required"),
    [
        pytest.param("worse", GATES, "no_regression:roc_auc", "required >= 0.", id="worse-beyond-tolerance"),
        pytest.param(
            "slice_breaker", SLICE_GATES, "slice:month_to_month:roc_auc", "required >= 0.75", id="slice"
        ),
        pytest.param("slow", LATENCY_GATES, "latency:p95_ms", "required <= 30", id="too-slow"),
        pytest.param(
            "no_evidence", GATES, "evidence:validation_report", "required tag mlops.", id="no-evidence"
        ),
    ],
)
def test_failing_candidate_is_refused_and_aliases_stay(
    incumbent, client, trained, label, gates, gate, required
):
    name = incumbent["name"]
    with pytest.raises(PromotionRejected, match=f"gate '{gate}' failed: observed .*, {required}") as info:
        promote(trained, name, label, gates)
    decision = info.value.decision
    assert decision["decision"] == "rejected"
    assert gate in [g["gate"] for g in info.value.gate_results if g["status"] == "failed"]
    assert aliases(client, name)["champion"] == "2"
    assert aliases(client, name)["previous_champion"] == "1"
    refused = decision["version"]
    assert aliases(client, name)["challenger"] == refused
    assert tags(client, name, refused)[p.TAG_DECISION] == "rejected"
    assert gate in tags(client, name, refused)[p.TAG_REASONS]


def test_refusal_can_return_a_rejected_decision(incumbent, client, trained):
    decision = promote(trained, incumbent["name"], "worse", on_reject="return")
    assert decision["decision"] == "rejected"
    assert any("no_regression:roc_auc" in r for r in decision["reasons"])
    assert aliases(client, incumbent["name"])["champion"] == "2"


def test_refusal_can_skip_the_task_with_the_decision_in_its_xcom(incumbent, client, trained):
    from airflow.sdk.exceptions import AirflowSkipException

    context = make_context()
    with pytest.raises(
        AirflowSkipException,
        match=r"v\d+ not promoted: gate 'threshold:roc_auc' failed.*gate 'no_regression:roc_auc' failed",
    ):
        promotion(trained, incumbent["name"], "worse", on_reject="skip").execute(context)
    decision = context["ti"].pushed["return_value"]
    assert decision["decision"] == "rejected"
    assert any("no_regression:roc_auc" in r for r in decision["reasons"])
    assert aliases(client, incumbent["name"])["champion"] == "2"


@pytest.mark.parametrize(
    "render",
    [
        pytest.param(str, id="python-repr"),  # what "{{ ti.xcom_pull(task_ids='train') }}" renders to
        pytest.param(json.dumps, id="json"),
    ],
)
def test_a_training_result_rendered_into_a_string_is_read_back(trained, client, render):
    name = new_name()
    result = {**trained.runs["better"], "experiment_id": "1", "metrics": {"roc_auc": 0.9}}
    op = promotion(trained, name, "better")
    op.candidate = render(result)
    decision = op.execute(make_context())
    assert decision["decision"] == "promoted"
    assert decision["run_id"] == trained.runs["better"]["run_id"]
    assert client.get_model_version(name, decision["version"]).run_id == trained.runs["better"]["run_id"]


@pytest.fixture(scope="module")
def regressor_runs(mlflow_server: Any, trained: Any) -> dict[str, str]:
    """Two runs of one regressor: tagged by the runner as regression, and untagged."""
    import mlflow
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    frame = pd.read_csv(trained.eval_csv)
    model = LinearRegression().fit(frame[FEATURES], frame["churned"].astype(float))
    runs = {}
    for label, tags in (("tagged", {TAG_TASK_TYPE: "regression"}), ("untagged", {})):
        with mlflow.start_run(tags=tags) as run:
            mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        runs[label] = run.info.run_id
    return runs


@pytest.mark.parametrize(
    ("label", "registered"),
    [
        pytest.param("tagged", False, id="kind-from-the-run-before-registration"),
        pytest.param("untagged", True, id="kind-from-the-estimator-before-evaluation"),
    ],
)
def test_classification_gate_on_a_regressor_fails_naming_the_gate_and_the_regression_metrics(
    trained, client, regressor_runs, label, registered
):
    from airflow_mlops_provider.exceptions import GateConfigError

    name = new_name()
    op = promotion(trained, name, "better", gates={"thresholds": ["accuracy >= 0.0"], "evidence": False})
    op.candidate = regressor_runs[label]
    with pytest.raises(
        GateConfigError,
        match=r"gate 'thresholds: accuracy >= 0' reads 'accuracy', a classification metric, but the "
        r"model is a regression model .*; regression metrics: mae, r2, rmse",
    ):
        op.execute(make_context())
    versions = client.search_model_versions(f"name = '{name}'")
    assert len(versions) == (1 if registered else 0)
    assert "champion" not in (aliases(client, name) if registered else {})


def test_two_promotions_racing_on_one_model_have_exactly_one_winner(trained, client, monkeypatch):
    name = new_name()
    promote(trained, name, "baseline")
    # Both evaluate against v1 before either commits: the race is at the commit.
    barrier = threading.Barrier(2, timeout=120)
    original = ModelPromotionOperator._commit

    def commit_together(self, *args, **kwargs):
        barrier.wait()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ModelPromotionOperator, "_commit", commit_together)
    outcomes: dict[str, Any] = {}

    def run(label: str) -> None:
        try:
            outcomes[label] = promote(trained, name, label, task_id=f"promote_{label}")
        except Exception as err:
            outcomes[label] = err

    threads = [threading.Thread(target=run, args=(label,)) for label in ("better", "better_too")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    winners = [o for o in outcomes.values() if isinstance(o, dict) and o["decision"] == "promoted"]
    losers = [o for o in outcomes.values() if isinstance(o, PromotionConflict)]
    assert (len(winners), len(losers)) == (1, 1), outcomes
    assert "moved since evaluation" in str(losers[0])
    winner = winners[0]["version"]
    assert aliases(client, name)["champion"] == winner
    assert aliases(client, name)["previous_champion"] == "1"
    loser = ({"2", "3"} - {winner}).pop()
    assert tags(client, name, loser)[p.TAG_DECISION] == "conflict"
    assert p.LEASE_TAG not in client.get_registered_model(name).tags


def test_lease_admits_one_holder_at_a_time(trained, client):
    from mlflow import MlflowClient

    name = new_name()
    p.ensure_registered_model(client, name)
    inside, most, entered = [0], [0], []
    lock = threading.Lock()

    errors: list[BaseException] = []

    def hold(i: int) -> None:
        own = MlflowClient(client.tracking_uri, registry_uri=client.tracking_uri)
        try:
            with p.RegistryLease(own, name, f"worker-{i}", FAST_LEASE):
                with lock:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.3)
                with lock:
                    inside[0] -= 1
                entered.append(i)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(entered) == [0, 1, 2]
    assert most[0] == 1


def test_lease_write_that_loses_the_create_race_retries_and_other_errors_propagate(client):
    """The first write of the lease tag is a read-then-insert in MLflow's SQL store: when two
    contenders insert at once, the loser gets the database's uniqueness error. That is a lost race,
    not a failure; any other write error is."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = new_name()
    p.ensure_registered_model(client, name)

    class RacingClient(MlflowClient):
        def __init__(self, failure: Exception) -> None:
            super().__init__(client.tracking_uri, registry_uri=client.tracking_uri)
            self.failure: Exception | None = failure
            self.lease_writes = 0

        def set_registered_model_tag(self, name, key, value):
            if key == p.LEASE_TAG:
                self.lease_writes += 1
                if self.failure is not None:
                    failure, self.failure = self.failure, None
                    raise failure
            return super().set_registered_model_tag(name, key, value)

    lost = RacingClient(
        MlflowException(
            "BAD_REQUEST: (sqlite3.IntegrityError) UNIQUE constraint failed: "
            "registered_model_tags.workspace, registered_model_tags.key"
        )
    )
    with p.RegistryLease(lost, name, "loser-then-winner", FAST_LEASE) as lease:
        assert lease.token is not None
        assert lost.lease_writes == 2
        assert json.loads(client.get_registered_model(name).tags[p.LEASE_TAG])["token"] == lease.token
    assert p.LEASE_TAG not in client.get_registered_model(name).tags

    denied = RacingClient(MlflowException("PERMISSION_DENIED: not allowed to edit this model"))
    with pytest.raises(MlflowException, match="PERMISSION_DENIED"):
        p.RegistryLease(denied, name, "denied", FAST_LEASE).acquire()
    assert denied.lease_writes == 1


def test_rollback_restores_previous_champion_and_tags_tell_the_story(trained, client):
    name = new_name()
    promote(trained, name, "baseline")
    promote(trained, name, "better")
    result = ModelRollbackOperator(
        task_id="rollback",
        registered_model_name=name,
        reason="complaints spiked after release",
        lease=FAST_LEASE,
    ).execute(make_context("rollback"))
    assert (result["champion_version"], result["rolled_back_version"]) == ("1", "2")
    # v1 had no predecessor: previous_champion is removed rather than pointing at the bad model.
    assert result["previous_champion_version"] is None
    current = aliases(client, name)
    assert current.get("champion") == "1"
    assert "previous_champion" not in current
    v1, v2 = tags(client, name, "1"), tags(client, name, "2")
    assert v2[p.TAG_DECISION] == "promoted"
    assert (v2[p.TAG_STATUS], v2[p.TAG_ROLLED_BACK_TO]) == ("rolled_back", "1")
    assert v2[p.TAG_ROLLBACK_REASON] == "complaints spiked after release"
    assert (v1[p.TAG_DECISION], v1[p.TAG_SUPERSEDED_BY]) == ("promoted", "2")
    assert (v1[p.TAG_STATUS], v1[p.TAG_RESTORED_FROM]) == ("champion", "2")
    with pytest.raises(PromotionConflict, match="no previous_champion"):
        ModelRollbackOperator(
            task_id="rollback", registered_model_name=name, reason="again", lease=FAST_LEASE
        ).execute(make_context("rollback"))


def test_mlflow_unreachable_during_evaluation_leaves_aliases(trained, client, proxy, monkeypatch):
    name = new_name()
    promote(trained, name, "baseline")
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", proxy.conn_json())
    original = ModelPromotionOperator._evaluate

    def cut_then_evaluate(self, *args, **kwargs):
        proxy.cut()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ModelPromotionOperator, "_evaluate", cut_then_evaluate)
    start = time.monotonic()
    with pytest.raises(MlflowConnectionError, match=r"became unreachable while evaluating churn-\w+ v2"):
        promote(trained, name, "better")
    assert time.monotonic() - start < 60
    assert aliases(client, name) == {"champion": "1", "challenger": "2"}


def test_mlflow_lost_between_alias_writes_is_repaired_by_the_next_holder(trained, client, proxy, monkeypatch):
    name = new_name()
    promote(trained, name, "baseline")
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", proxy.conn_json())
    from airflow_mlops_provider.promotion import lease

    original = lease._set_alias

    def write_then_cut(*args, **kwargs):
        original(*args, **kwargs)
        proxy.cut()

    monkeypatch.setattr(lease, "_set_alias", write_then_cut)
    with pytest.raises(MlflowConnectionError, match="became unreachable while promoting"):
        promote(trained, name, "better")
    monkeypatch.setattr(lease, "_set_alias", original)
    # The serving alias never moved; the dead holder's intent stays in the lease.
    state = p.read_state(client, name)
    assert state.aliases["champion"] == "1"
    assert state.lease is not None
    assert state.lease["intent"] == {"champion": ["1", "2"], "previous_champion": [None, "1"]}
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": client.tracking_uri})
    )
    result = promote(trained, name, "better_too")
    assert any("rolled back an interrupted change" in r for r in result["reasons"])
    assert aliases(client, name) == {"champion": "3", "previous_champion": "1", "challenger": "3"}


def test_approval_path_commits_only_an_approved_candidate(trained, client):
    name = new_name()
    promote(trained, name, "baseline")
    decision = promote(trained, name, "better", commit=False, task_id="evaluate", drift_summary={"psi": 0.02})
    assert decision["decision"] == "awaiting_approval"
    assert aliases(client, name)["champion"] == "1"
    assert tags(client, name, "2")[p.TAG_DECISION] == "awaiting_approval"

    approve = ModelApprovalOperator(task_id="approve", evaluation_task_id="evaluate")
    context = make_context("approve", {"evaluate": decision})
    approve.prepare(context)
    assert approve.subject == f"Promote {name} v2 to champion?"
    assert "| no_regression:roc_auc | PASS |" in approve.body
    assert '"psi": 0.02' in approve.body
    at = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
    answer = approve.execute_complete(
        context,
        {
            "chosen_options": ["Approve"],
            "params_input": {},
            "responded_at": at,
            "responded_by_user": {"id": "7", "name": "ana"},
        },
    )
    assert answer["outcome"]["decision"] == "approved"
    assert (tags(client, name, "2")[p.TAG_APPROVAL], tags(client, name, "2")[p.TAG_APPROVED_BY]) == (
        "approved",
        "ana",
    )

    commit = ModelPromotionCommitOperator(
        task_id="commit", evaluation_task_id="evaluate", approval_task_id="approve", lease=FAST_LEASE
    )
    result = commit.execute(make_context("commit", {"evaluate": decision, "approve": answer}))
    assert (result["decision"], result["champion_version"], result["previous_champion_version"]) == (
        "promoted",
        "2",
        "1",
    )
    assert "approval: approved by ana" in client.get_model_version(name, "2").description

    # A second candidate: nobody answers before the deadline, the scheduler applies the default.
    late = promote(trained, name, "better_too", commit=False, task_id="evaluate")
    context = make_context("approve", {"evaluate": late})
    answer = approve.execute_complete(
        context,
        {
            "chosen_options": ["Reject"],
            "params_input": {},
            "responded_at": at,
            "responded_by_user": None,
            "timedout": True,
        },
    )
    assert tags(client, name, late["version"])[p.TAG_APPROVAL] == "timed_out"
    assert tags(client, name, late["version"])[p.TAG_DECISION] == "rejected"
    with pytest.raises(PromotionRejected, match="approval timed_out"):
        commit.execute(make_context("commit", {"evaluate": late, "approve": answer}))
    assert aliases(client, name)["champion"] == "2"


def test_approval_is_skipped_when_the_evaluation_refused():
    from airflow.sdk.exceptions import AirflowSkipException

    approve = ModelApprovalOperator(task_id="approve", evaluation_task_id="evaluate")
    refused = {"decision": "rejected", "registered_model_name": "m", "version": "4"}
    with pytest.raises(AirflowSkipException, match="decided 'rejected'"):
        approve.prepare(make_context("approve", {"evaluate": refused}))


@pytest.fixture(scope="module")
def two_versions(trained: Any, mlflow_server: Any) -> tuple[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url, registry_uri=mlflow_server.url)
    name = new_name()
    p.ensure_registered_model(client, name)
    source = trained.runs["better"]["model_uri"]
    for _ in range(2):
        client.create_model_version(
            name, source, run_id=trained.runs["better"]["run_id"], model_id=source.removeprefix("models:/")
        )
    client.set_registered_model_alias(name, "champion", "1")
    return name, client


def test_sensor_pokes_ready_version_and_alias(two_versions):
    name, _client = two_versions
    ctx = make_context("sense")
    assert ModelVersionSensor(task_id="s", registered_model_name=name, version=2).poke(ctx)
    assert ModelVersionSensor(
        task_id="s", registered_model_name=name, alias="champion", target_version=1
    ).poke(ctx)
    assert not ModelVersionSensor(
        task_id="s", registered_model_name=name, alias="champion", away_from_version=1
    ).poke(ctx)


def test_deferred_sensor_sees_the_alias_move(two_versions):
    from airflow.sdk.exceptions import TaskDeferred

    name, client = two_versions
    client.set_registered_model_alias(name, "champion", "1")
    sensor = ModelVersionSensor(
        task_id="s",
        registered_model_name=name,
        alias="champion",
        away_from_version=1,
        deferrable=True,
        poke_interval=0.2,
        timeout=30,
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context("sense"))
    trigger = deferred.value.trigger
    assert isinstance(trigger, ModelVersionTrigger)
    mover = threading.Timer(1.0, client.set_registered_model_alias, args=(name, "champion", "2"))
    mover.start()

    async def first_event() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    event = asyncio.run(asyncio.wait_for(first_event(), 30))
    mover.join()
    assert event["status"] == "success", event
    assert "moved away from v1 to 2" in event["message"]
    sensor.execute_complete({}, event)
    with pytest.raises(MlopsProviderError, match="failed"):
        sensor.execute_complete({}, {"status": "failed", "message": "registration failed"})


def test_trigger_reports_timeout_and_error_without_raising(two_versions, monkeypatch):
    name, _ = two_versions

    async def first(trigger: ModelVersionTrigger) -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    waiting = ModelVersionTrigger(
        registered_model_name=name, alias="champion", target_version="99", poll_interval=0.2, timeout=1
    )
    assert asyncio.run(first(waiting))["status"] == "timeout"
    dead = json.dumps(
        {"conn_type": "mlflow", "host": "127.0.0.1", "port": free_port(), "extra": {"max_retries": 0}}
    )
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEAD", dead)
    broken = ModelVersionTrigger(
        registered_model_name=name, version="1", mlflow_conn_id="mlflow_dead", poll_interval=0.1, max_errors=2
    )
    event = asyncio.run(first(broken))
    assert event["status"] == "error"
    assert "Connection" in event["message"] or "refused" in event["message"]
    assert os.environ["AIRFLOW_CONN_MLFLOW_DEAD"] == dead


def test_stale_lease_with_intent_is_broken_and_its_change_rolled_forward(two_versions_fresh):
    name, client = two_versions_fresh
    # A holder died after moving champion 1 -> 2 but before previous_champion -> 1.
    client.set_registered_model_alias(name, "champion", "2")
    dead = {
        "token": "dead",
        "owner": "gone",
        "written_at": time.time() - 3600,
        "expires_at": time.time() - 3000,
        "intent": {"champion": ["1", "2"], "previous_champion": [None, "1"]},
    }
    client.set_registered_model_tag(name, p.LEASE_TAG, json.dumps(dead))
    with p.RegistryLease(client, name, "repairer", FAST_LEASE) as lease:
        assert lease.broken == dead
        assert p.repair_interrupted(client, name, lease) == (
            "rolled forward an interrupted change: previous_champion -> 1"
        )
    assert aliases(client, name) == {"champion": "2", "previous_champion": "1"}
    assert p.LEASE_TAG not in client.get_registered_model(name).tags
    with pytest.raises(PromotionConflict, match=r"champion of .* is 2, not v1"):
        ModelRollbackOperator(
            task_id="rollback",
            registered_model_name=name,
            reason="wrong one",
            expected_champion_version=1,
            lease=FAST_LEASE,
        ).execute(make_context("rollback"))
    assert aliases(client, name)["champion"] == "2"


@pytest.fixture
def two_versions_fresh(trained: Any, mlflow_server: Any) -> tuple[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url, registry_uri=mlflow_server.url)
    name = new_name()
    p.ensure_registered_model(client, name)
    source = trained.runs["better"]["model_uri"]
    for _ in range(2):
        client.create_model_version(
            name, source, run_id=trained.runs["better"]["run_id"], model_id=source.removeprefix("models:/")
        )
    return name, client
