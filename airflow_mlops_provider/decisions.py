"""The decision log: what each pipeline run decided for a model, kept in MLflow, and its summary.

Each provider task that decides something about a model records it as one *step* of that DAG run:
``validation`` (the data contract's verdict), ``drift`` (against the champion), ``monitoring`` (the
served champion's live performance on outcomes that arrived, and the decay decision),
``retraining`` (skipped, and why), ``promotion`` (the candidate's metrics against the champion, each
gate, the decision) and ``package`` (the Bento). A DAG run has one MLflow run per model in the
``mlops-decisions`` experiment, tagged with the model and the DAG run; each step is a JSON tag on it,
with the champion as it stood when the step ended. Failed validations leave a record too, though no
training run or model version exists for them.

``python -m airflow_mlops_provider.decisions MODEL`` prints the table, one row per DAG run::

    run              validation  drift            live  candidate vs champion  gates       decision  champion  Bento
    week1-baseline   passed      no champion yet  -     v1 roc_auc 0.784       passed 7/7  promoted  v1        churn:v1

Airflow-free: it takes an ``MlflowClient``. The operators record through
:meth:`airflow_mlops_provider.hooks.MlflowHookMixin.record_decision_step`, which never fails a task
over the log.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops_provider import lineage

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT = "mlops-decisions"
TAG_MODEL = "mlops.decision.model"
STEP_PREFIX = "mlops.decision.step."
Step = Literal["validation", "drift", "monitoring", "retraining", "promotion", "package"]
STEPS: tuple[Step, ...] = ("validation", "drift", "monitoring", "retraining", "promotion", "package")
#: A step's JSON is kept under this many characters (MLflow's tag values are bounded).
MAX_STEP_CHARS = 5000


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _experiment_id(client: MlflowClient) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(EXPERIMENT))
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return str(client.get_experiment_by_name(EXPERIMENT).experiment_id)  # type: ignore[union-attr]


def _runs(
    client: MlflowClient, model: str, dag_run_id: str | None = None, max_results: int = 1000
) -> list[Any]:
    query = f"tags.`{TAG_MODEL}` = '{_quote(model)}'"
    if dag_run_id is not None:
        query += f" and tags.`{lineage.TAG_DAG_RUN_ID}` = '{_quote(dag_run_id)}'"
    return list(
        client.search_runs(
            [_experiment_id(client)], query, max_results=max_results, order_by=["attributes.start_time ASC"]
        )
    )


def record_step(
    client: MlflowClient,
    model: str,
    *,
    dag_id: str,
    dag_run_id: str,
    step: Step,
    payload: Mapping[str, Any],
    champion: str | None = None,
) -> str:
    """Record ``step`` of DAG run ``dag_run_id`` for ``model``; return the decision run's id.

    :param champion: The champion version when the step ended (``None``: there is none).
    """
    if step not in STEPS:
        raise ValueError(f"decision step {step!r}; allowed: {list(STEPS)}")
    found = _runs(client, model, dag_run_id, max_results=1)
    if found:
        run_id = found[0].info.run_id
    else:
        run = client.create_run(
            _experiment_id(client),
            run_name=f"{model} {dag_run_id}",
            tags={TAG_MODEL: model, lineage.TAG_DAG_ID: dag_id, lineage.TAG_DAG_RUN_ID: dag_run_id},
        )
        run_id = run.info.run_id
        client.set_terminated(run_id, status="FINISHED")
    text = json.dumps({**payload, "champion": champion}, sort_keys=True, default=str)
    if len(text) > MAX_STEP_CHARS:
        text = json.dumps({"truncated": text[: MAX_STEP_CHARS - 100], "champion": champion})
    client.set_tag(run_id, STEP_PREFIX + step, text)
    return str(run_id)


# --- what the operators record ---------------------------------------------------------------


def validation_step(status: str, failures: Sequence[Any]) -> dict[str, Any]:
    """The ``validation`` step: the verdict and each failed check as ``"<column> <check>"``."""
    failed = [f"{f.column} {f.check}" if f.column else str(f.check) for f in failures]
    return {"status": status, "failed": failed}


def drift_step(result: Mapping[str, Any]) -> dict[str, Any]:
    """The ``drift`` step, from the drift check's result."""
    return {k: result.get(k) for k in ("outcome", "drift_share", "drifted_columns")}


def monitoring_step(result: Mapping[str, Any]) -> dict[str, Any]:
    """The ``monitoring`` step, from a live-performance check: status, the policy's metric live and
    offline, the labelled rows, and whether a rollback was recommended."""
    metric = result.get("metric")
    live = ((result.get("live") or {}).get("metrics") or {}).get(metric) or {}
    return {
        "status": result.get("status"),
        "version": result.get("version"),
        "metric": metric,
        "live": live.get("value"),
        "rows": live.get("rows"),
        "offline": (result.get("offline") or {}).get(metric),
        "rollback": bool((result.get("rollback") or {}).get("recommended")),
    }


def promotion_step(decision: Mapping[str, Any], metric_names: Sequence[str]) -> dict[str, Any]:
    """The ``promotion`` step, from a promotion decision: the gate metrics of candidate and champion."""
    metrics = decision.get("metrics") or {}

    def overall(side: str) -> dict[str, float | None]:
        values = ((metrics.get(side) or {}).get("overall")) or {}
        return {
            m: (round(v, 6) if isinstance(v, float) else v)
            for m in metric_names
            if (v := values.get(m)) is not None
        }

    return {
        "version": decision.get("version"),
        "decision": decision.get("decision"),
        "reasons": list(decision.get("reasons") or [])[:5],
        "gates": {g["gate"]: g["status"] for g in decision.get("gates") or []},
        "metrics": list(metric_names),
        "candidate": overall("candidate"),
        "champion_metrics": overall("champion"),
        "evaluated_against": decision.get("evaluated_against_version"),
    }


# --- the summary -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """What one DAG run decided for a model."""

    run: str
    validation: str
    drift: str
    live: str
    candidate: str
    gates: str
    decision: str
    champion: str
    bento: str

    HEADER = (
        "run",
        "validation",
        "drift",
        "live",
        "candidate vs champion",
        "gates",
        "decision",
        "champion",
        "Bento",
    )

    def cells(self) -> tuple[str, ...]:
        return (
            self.run,
            self.validation,
            self.drift,
            self.live,
            self.candidate,
            self.gates,
            self.decision,
            self.champion,
            self.bento,
        )


def _steps(run: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for step in STEPS:
        raw = run.data.tags.get(STEP_PREFIX + step)
        if raw:
            try:
                out[step] = json.loads(raw)
            except ValueError:
                out[step] = {"unreadable": raw[:80]}
    return out


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _validation(step: Mapping[str, Any] | None) -> str:
    if not step:
        return "-"
    if step.get("status") == "failed":
        failed = step.get("failed") or []
        return f"FAILED: {', '.join(failed)}" if failed else "FAILED"
    return str(step.get("status"))


def _drift(step: Mapping[str, Any] | None) -> str:
    if not step:
        return "-"
    if step.get("outcome") == "no_reference":
        return "no champion yet"
    drifted = step.get("drifted_columns") or []
    share = step.get("drift_share") or 0.0
    return f"{step.get('outcome')} ({share:.0%} of columns: {', '.join(drifted) or '-'})"


def _live(step: Mapping[str, Any] | None) -> str:
    if not step:
        return "-"
    if step.get("live") is None:
        return f"{step.get('status')} ({step.get('rows') or 0} labelled)"
    text = f"{step.get('status')}: v{step.get('version')} {step.get('metric')} {_fmt(step['live'])}"
    if step.get("offline") is not None:
        text += f" vs {_fmt(step['offline'])} offline"
    return f"{text}, {step.get('rows')} labelled"


def _candidate(step: Mapping[str, Any] | None) -> str:
    if not step or not step.get("candidate"):
        return "-"
    shown = step.get("metrics") or sorted(step["candidate"])
    metric = next((m for m in shown if m in step["candidate"]), None)
    if metric is None:
        return f"v{step.get('version')}"
    text = f"v{step.get('version')} {metric} {_fmt(step['candidate'][metric])}"
    champion = (step.get("champion_metrics") or {}).get(metric)
    if step.get("evaluated_against") and champion is not None:
        text += f" vs v{step['evaluated_against']} {_fmt(champion)}"
    return text


def _gates(step: Mapping[str, Any] | None) -> str:
    if not step or not step.get("gates"):
        return "-"
    gates = step["gates"]
    failed = sorted(g for g, status in gates.items() if status == "failed")
    if failed:
        return f"failed: {', '.join(failed)}"
    return f"passed {sum(1 for s in gates.values() if s == 'passed')}/{len(gates)}"


def _decision(steps: Mapping[str, Mapping[str, Any]]) -> str:
    promotion = steps.get("promotion")
    if promotion:
        text = str(promotion.get("decision"))
        reasons = promotion.get("reasons") or []
        return f"{text}: {reasons[0]}" if text == "rejected" and reasons else text
    if (steps.get("retraining") or {}).get("decision") == "skipped":
        return f"skipped: {steps['retraining'].get('reason', 'not retrained')}"
    if (steps.get("validation") or {}).get("status") == "failed":
        return "not trained"
    monitoring = steps.get("monitoring") or {}
    if monitoring.get("status") == "degraded":
        return "retraining scheduled" + (", rollback" if monitoring.get("rollback") else "")
    return "-"


def summarize(client: MlflowClient, model: str, dag_run_ids: Sequence[str] | None = None) -> list[Row]:
    """One :class:`Row` per DAG run that recorded a decision for ``model``, oldest first."""
    from airflow_mlops_provider.promotion import alias_version

    rows = []
    bentos: dict[str, str] = {}
    for run in _runs(client, model):
        run_id = run.data.tags.get(lineage.TAG_DAG_RUN_ID, run.info.run_id)
        if dag_run_ids is not None and run_id not in dag_run_ids:
            continue
        steps = _steps(run)
        last = [steps[s] for s in STEPS if s in steps]
        champion = next((s.get("champion") for s in reversed(last) if "champion" in s), None)
        if champion is None and not last:
            champion = alias_version(client, model, "champion")
        bento = (steps.get("package") or {}).get("bento_tag")
        if not bento and champion:
            if champion not in bentos:
                tags = client.get_model_version(model, champion).tags or {}
                bentos[champion] = tags.get(lineage.TAG_BENTO_TAG, "")
            bento = bentos[champion]
        rows.append(
            Row(
                run=run_id,
                validation=_validation(steps.get("validation")),
                drift=_drift(steps.get("drift")),
                live=_live(steps.get("monitoring")),
                candidate=_candidate(steps.get("promotion")),
                gates=_gates(steps.get("promotion")),
                decision=_decision(steps),
                champion=f"v{champion}" if champion else "-",
                bento=bento or "-",
            )
        )
    return rows


def table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width table."""
    cells = [Row.HEADER, *(r.cells() for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(Row.HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _client(tracking_uri: str | None) -> MlflowClient:
    if tracking_uri:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    return MlflowHook().get_client()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m airflow_mlops_provider.decisions MODEL``: print what each run decided."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_mlops_provider.decisions",
        description="Print what each pipeline run decided for a registered model, from MLflow.",
    )
    parser.add_argument("model", help="registered model name")
    parser.add_argument("--run", action="append", dest="runs", help="only this DAG run id (repeatable)")
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI; default the Airflow connection mlflow_default"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    rows = summarize(_client(args.tracking_uri), args.model, args.runs)
    if not rows:
        print(f"no decisions recorded for model {args.model!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([dict(zip(Row.HEADER, r.cells(), strict=True)) for r in rows], indent=2))
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
