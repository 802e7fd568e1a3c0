"""The training task's MLflow run: earlier tries' runs it supersedes, how it ends, the model it logged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops_provider import lineage
from airflow_mlops_provider.exceptions import TrainingError

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: The tags naming one task of one DAG run: its tries' runs share them.
TASK_TAGS = (lineage.TAG_DAG_ID, lineage.TAG_DAG_RUN_ID, lineage.TAG_TASK_ID)


def fail_stale_runs(client: MlflowClient, experiment_id: str, tags: dict[str, str], log: Any) -> None:
    """Mark FAILED the runs of this task's earlier tries that were left RUNNING."""
    quoted = {k: tags[k].replace("'", "\\'") for k in TASK_TAGS}
    query = " and ".join(f"tags.`{k}` = '{quoted[k]}'" for k in TASK_TAGS)
    for stale in client.search_runs([experiment_id], f"{query} and attributes.status = 'RUNNING'"):
        log.warning("Marking run %s of an earlier try FAILED: it was left RUNNING", stale.info.run_id)
        client.set_tag(stale.info.run_id, lineage.TAG_ERROR, "superseded by a later try; it was left RUNNING")
        client.set_terminated(stale.info.run_id, status="FAILED")


def end_run(
    client: MlflowClient, run_id: str, status: Literal["FAILED", "KILLED"], reason: str, log: Any
) -> None:
    """Mark the run ``status`` with ``reason`` unless it already ended so; log, never raise."""
    try:
        run = client.get_run(run_id)
        if lineage.TAG_ERROR not in run.data.tags:
            client.set_tag(run_id, lineage.TAG_ERROR, reason[:4000])
        if run.info.status != status:
            client.set_terminated(run_id, status=status)
        log.info("MLflow run %s marked %s", run_id, status)
    except Exception:
        log.exception("Could not mark MLflow run %s %s", run_id, status)


def finish_run(client: MlflowClient, run_id: str, log: Any) -> dict[str, Any]:
    """Return ``{run_id, experiment_id, model_uri, metrics}`` of the run the process finished, marking
    it FINISHED; mark it FAILED and raise when it logged no model."""
    run = client.get_run(run_id)
    experiment_id = run.info.experiment_id
    logged = client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    model_uri = logged[0].model_uri if logged else run.data.tags.get(lineage.TAG_MODEL_URI)
    if not model_uri:
        reason = (
            f"the training process exited 0 but MLflow run {run_id} has no logged model; "
            f"the command must log one to MLFLOW_RUN_ID (mlflow.<flavour>.log_model)"
        )
        end_run(client, run_id, "FAILED", reason, log)
        raise TrainingError(reason)
    if run.info.status == "RUNNING":
        client.set_terminated(run_id, status="FINISHED")
    elif run.info.status != "FINISHED":
        raise TrainingError(f"MLflow run {run_id} ended {run.info.status}")
    log.info("MLflow run %s logged model %s", run_id, model_uri)
    return {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "model_uri": model_uri,
        "metrics": dict(run.data.metrics),
    }
