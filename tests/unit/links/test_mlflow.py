"""The MLflow extra links' XCom look-up: an absent URL must never go through the look-up that logs.

``XCom.get_value`` logs the API server's 404 at ERROR level; the end-to-end check of what the task
log says is tests/integration/training/test_extra_links.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.providers.common.compat.sdk import XCom

from airflow_mlops_provider.links import mlflow as links

URL = "http://mlflow:5000/#/experiments/3/runs/abc"


@pytest.fixture
def xcoms(monkeypatch) -> dict[tuple[str, int], Any]:
    """XComs by (key, map_index), served by ``get_all`` and ``get_value`` as the API server would."""
    stored: dict[tuple[str, int], Any] = {}

    def get_all(*, key: str, dag_id: str, task_id: str, run_id: str) -> list[Any] | None:
        values = [v for (k, _), v in sorted(stored.items(), key=lambda item: item[0][1]) if k == key]
        return values or None

    def get_value(*, ti_key: TaskInstanceKey, key: str) -> Any:
        if (key, ti_key.map_index) not in stored:
            raise AssertionError(f"asked for absent {key!r}: the API client would log 'XCom not found'")
        return stored[(key, ti_key.map_index)]

    monkeypatch.setattr(XCom, "get_all", get_all)
    monkeypatch.setattr(XCom, "get_value", get_value)
    return stored


def key(map_index: int = -1) -> TaskInstanceKey:
    return TaskInstanceKey("continuous_training", "promote", "manual__1", 1, map_index)


def test_absent_urls_give_empty_links_without_the_lookup_that_logs(xcoms):
    assert links.MlflowRunLink().get_link(None, ti_key=key()) == ""  # type: ignore[arg-type]
    assert links.MlflowModelVersionLink().get_link(None, ti_key=key(2)) == ""  # type: ignore[arg-type]


def test_present_url_links(xcoms):
    xcoms[(links.XCOM_RUN_URL, -1)] = URL
    assert links.MlflowRunLink().get_link(None, ti_key=key()) == URL  # type: ignore[arg-type]
    assert links.MlflowModelVersionLink().get_link(None, ti_key=key()) == ""  # type: ignore[arg-type]


def test_mapped_task_links_to_its_own_url(xcoms):
    xcoms[(links.XCOM_RUN_URL, 0)] = URL.replace("abc", "zero")
    xcoms[(links.XCOM_RUN_URL, 1)] = URL
    assert links.MlflowRunLink().get_link(None, ti_key=key(1)) == URL  # type: ignore[arg-type]
