"""Trigger ``churn_training`` from the Airflow UI's trigger form and find the changed parameter in MLflow.

The whole path a user takes: the DAG page, the Trigger dialog, a hyper-parameter changed in the
"Run Parameters" form, the submit button; then Airflow renders ``{{ params.n_estimators }}`` into
the training operator and the MLflow run the DAG run created must carry the value typed in.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import TYPE_CHECKING

import pytest

from airflow_mlops_provider.lineage import TAG_DAG_RUN_ID
from mlops_demo.stack import LocalStack
from tests.e2e.conftest import ARTIFACTS

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("chromium")]

DAG_ID = "churn_training"
#: Not the DAG's default (100), so only the form can have put it into the run.
N_ESTIMATORS = 37


@pytest.mark.timeout(1200)
def test_hyperparameter_changed_in_trigger_form_reaches_the_mlflow_run(stack: LocalStack, page: Page) -> None:
    from mlflow import MlflowClient
    from playwright.sync_api import expect

    stack.wait_for_dag(DAG_ID)
    page.goto(f"{stack.config.airflow_url}/dags/{DAG_ID}")

    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog").filter(has_text=f"Trigger Dag - {DAG_ID}")
    expect(dialog).to_be_visible()
    # A new DAG is paused; the form unpauses it on trigger unless told not to.
    expect(dialog.get_by_role("checkbox", name=re.compile(f"Unpause {DAG_ID}"))).to_be_checked()
    n_estimators = dialog.get_by_role("spinbutton", name="n_estimators")
    expect(n_estimators).to_have_value("100")
    expect(dialog.get_by_role("spinbutton", name="max_depth")).to_have_value("3")
    n_estimators.fill(str(N_ESTIMATORS))
    expect(n_estimators).to_have_value(str(N_ESTIMATORS))
    page.screenshot(path=ARTIFACTS / f"{DAG_ID}-trigger-form.png")

    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(f"/api/v2/dags/{DAG_ID}/dagRuns")
    ) as posted:
        dialog.get_by_role("button", name="Trigger", exact=True).click()
    response = posted.value
    assert response.ok, f"the UI's trigger request answered HTTP {response.status}: {response.text()[:500]}"
    sent_conf = json.loads(response.request.post_data or "{}")["conf"]
    assert sent_conf["n_estimators"] == N_ESTIMATORS
    run_id = response.json()["dag_run_id"]
    assert response.json()["triggered_by"] == "ui"

    # The UI goes on to the new run's page.
    expect(page).to_have_url(re.compile(re.escape(f"/dags/{DAG_ID}/runs/")))
    run = stack.wait_for_run(DAG_ID, run_id, timeout=600)
    assert run["state"] == "success", (
        f"run {run_id} ended {run['state']}: {stack.task_states(DAG_ID, run_id)}"
    )

    page.goto(f"{stack.config.airflow_url}/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}")
    heading = page.get_by_role("heading", name=run_id, exact=True)
    expect(heading.locator("xpath=..").get_by_test_id("state-badge")).to_have_text("Success")
    train_row = page.get_by_role("row").filter(has=page.get_by_role("link", name="train", exact=True))
    expect(train_row.get_by_test_id("state-badge")).to_have_text("Success")
    page.screenshot(path=ARTIFACTS / f"{DAG_ID}-run-succeeded.png")

    client = MlflowClient(tracking_uri=stack.config.mlflow_url)
    experiment = client.get_experiment_by_name("churn")
    assert experiment is not None, "the DAG run created no MLflow experiment 'churn'"
    mlflow_runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TAG_DAG_RUN_ID}` = '{run_id}'"
    )
    # A retried task leaves one run per try; the run that succeeded is the one that trained the model.
    finished = [r for r in mlflow_runs if r.info.status == "FINISHED"]
    assert len(finished) == 1, f"MLflow runs tagged with {run_id}: {[r.info.status for r in mlflow_runs]}"
    mlflow_run = finished[0]
    assert mlflow_run.data.params["n_estimators"] == str(N_ESTIMATORS)
    assert mlflow_run.data.params["max_depth"] == "3"
