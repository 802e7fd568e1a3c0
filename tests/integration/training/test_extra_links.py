"""The MLflow extra links under Airflow's own task runner (``airflow dags test``).

The task runner asks each link for its URL when a task ends and stores it for the UI. A task that
pushed no URL (a rejected promotion) must get an empty link, and say nothing about it in its log.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.integration.training.conftest import dags_test
from tests.integration.training.dags.extra_links import RUN_URL

pytestmark = pytest.mark.integration

DAGS = Path(__file__).parent / "dags"


def stored_links(dag_run_id: str) -> dict[tuple[str, str], str]:
    """The links the task runner stored for the UI, by task and link class."""
    database = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "select task_id, key, value from xcom where dag_id = 'extra_links' and run_id = ? "
            "and key like '\\_link\\_%' escape '\\'",
            (dag_run_id,),
        ).fetchall()
    return {(task_id, key.removeprefix("_link_")): json.loads(value) for task_id, key, value in rows}


@pytest.fixture(scope="module")
def extra_links_run(airflow_db) -> tuple[str, dict[tuple[str, str], str]]:
    log, dag_run_id = dags_test("extra_links", {}, DAGS)
    return log, stored_links(dag_run_id)


def test_links_of_a_task_that_pushed_no_url_are_empty_and_log_no_error(extra_links_run):
    log, links = extra_links_run
    assert links[("rejected", "MlflowRunLink")] == ""
    assert links[("rejected", "MlflowModelVersionLink")] == ""
    assert links[("promoted", "MlflowModelVersionLink")] == ""
    assert "XCom not found" not in log
    assert "[error" not in log.lower()


def test_link_of_a_task_that_pushed_a_url_points_at_it(extra_links_run):
    _, links = extra_links_run
    assert links[("promoted", "MlflowRunLink")] == RUN_URL
