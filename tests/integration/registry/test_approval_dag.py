"""A real human-in-the-loop round trip: ``dag.test()`` runs evaluate >> approve >> commit.

``dag.test()`` parks the approval task in AWAITING_INPUT and waits for a response recorded from
outside. A thread here plays the Airflow API server: it finds the parked task and its request in
the metadata database and records "Approve" by a named user exactly as the API's
``update_hitl_detail`` handler does (``handle_event_submit``); ``dag.test()`` then resumes the task.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from airflow_mlops_provider import promotion as p
from tests.integration.registry.conftest import FEATURES
from tests.integration.registry.test_promotion import GATES, aliases, new_name, promote, tags

pytestmark = pytest.mark.integration


def respond_when_asked(
    dag_id: str, seen: dict[str, Any], deadline_s: float = 240, dry_run: bool = False
) -> None:
    """Answer the first HITL request of ``dag_id`` with Approve by user 'ana', as the API does.

    Never leaves ``dag.test()`` waiting forever: on any error, or when no request shows up in time,
    it fails the parked task instead, and the test fails on ``seen["error"]``.
    """
    from airflow.models.hitl import HITLUser
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.trigger import handle_event_submit
    from airflow.sdk import timezone
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    if dry_run:  # only the imports above, in the calling thread
        return
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with create_session() as session:
                ti = session.scalar(
                    select(TI)
                    .where(TI.dag_id == dag_id, TI.state == TaskInstanceState.AWAITING_INPUT)
                    .options(joinedload(TI.hitl_detail))
                )
                if ti is not None and (time.monotonic() > deadline or "error" in seen):
                    ti.state = TaskInstanceState.FAILED
                    seen.setdefault("error", "no answer recorded in time")
                    return
                if ti is not None and ti.hitl_detail is not None:
                    detail = ti.hitl_detail
                    seen.update(task_id=ti.task_id, subject=detail.subject, body=detail.body)
                    seen["defaults"] = detail.defaults
                    detail.responded_by = HITLUser(id="7", name="ana")
                    detail.responded_at = timezone.utcnow()
                    detail.chosen_options = ["Approve"]
                    detail.params_input = {}
                    session.add(detail)
                    handle_event_submit(
                        TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session
                    )
                    return
        except Exception as err:
            seen["error"] = f"{type(err).__name__}: {err}"
        if time.monotonic() > deadline + 60:
            seen.setdefault("error", "gave up")
            return
        time.sleep(0.5)


DAG_FILE = """
import json
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from airflow_mlops_provider.operators.registry import gated_promotion
from tests.integration.registry.conftest import FAST_LEASE

spec = json.loads((Path(__file__).parent / "spec.json").read_text())
with DAG(dag_id=spec["dag_id"], schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    gated_promotion(group_id="promote", lease=FAST_LEASE, response_timeout=timedelta(minutes=10), **spec["args"])
"""


def test_dag_test_round_trip_through_the_approval_task(trained, airflow_db, client, tmp_path, monkeypatch):
    import importlib.util
    import json

    from airflow import settings

    name = new_name()
    promote(trained, name, "baseline")
    dag_id = f"promotion_{uuid.uuid4().hex[:8]}"
    # dag.test() syncs the DAG from a DAG bundle: give it a folder holding only this DAG's file.
    (tmp_path / "spec.json").write_text(
        json.dumps(
            {
                "dag_id": dag_id,
                "args": {
                    "candidate": trained.runs["better"],
                    "registered_model_name": name,
                    "eval_data_uri": str(trained.eval_csv),
                    "target_column": "churned",
                    "feature_columns": FEATURES,
                    "gates": GATES,
                    "drift_summary": {"tenure": {"psi": 0.04}},
                },
            }
        )
    )
    (tmp_path / "promotion_dag.py").write_text(DAG_FILE)
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(tmp_path))
    module_spec = importlib.util.spec_from_file_location("promotion_dag", tmp_path / "promotion_dag.py")
    assert module_spec is not None
    assert module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    dag = module.dag

    # Import and configure every model here, before the thread starts: two threads importing them
    # at once deadlock on the import lock or define their tables twice.
    from airflow.models import import_all_models
    from sqlalchemy.orm import configure_mappers

    import_all_models()
    configure_mappers()
    respond_when_asked(dag_id, {}, deadline_s=-1, dry_run=True)

    seen: dict[str, Any] = {}
    responder = threading.Thread(target=respond_when_asked, args=(dag_id, seen), daemon=True)
    responder.start()
    run = dag.test()
    responder.join(timeout=10)
    assert "error" not in seen, seen
    assert seen["task_id"] == "promote.approve"
    assert seen["subject"] == f"Promote {name} v2 to champion?"
    assert "| no_regression:roc_auc | PASS |" in seen["body"]
    assert '"psi": 0.04' in seen["body"]
    assert seen["defaults"] == ["Reject"]
    assert str(run.state) == "success"
    assert aliases(client, name) == {"champion": "2", "previous_champion": "1", "challenger": "2"}
    v2 = tags(client, name, "2")
    assert (v2[p.TAG_APPROVAL], v2[p.TAG_APPROVED_BY]) == ("approved", "ana")
    assert v2[p.TAG_DECISION] == "promoted"
    assert v2[p.TAG_DAG_RUN].startswith(f"{dag_id}/")
