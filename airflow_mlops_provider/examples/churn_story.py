"""The three-week churn story ``make demo`` tells on the running local stack.

Week 1 is a baseline batch: validated, trained, promoted on the absolute gates, packaged as a Bento.
Week 2 has real drift (more month-to-month contracts, higher charges): the drift check says so, a
challenger is trained and becomes champion only if it passes the gates. Week 3 arrives with
``days_since_last_login`` 38% null and zero-filled upstream: validation fails closed, nothing is
trained or promoted, and the champion stays as it was.

Each week is one ``continuous_training`` run, triggered through the Airflow REST API with the batch
as ``data_uri``; the outcome is read back from the run's task states and XComs and from the MLflow
registry, checked against the story, and printed as a table. The batches are generated with fixed
seeds, so a second ``make demo`` sends the same bytes: the DAG recognises data it already trained
on, and no model version or Bento is added.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops_provider.examples.churn import WeekKind, write_week
from airflow_mlops_provider.lineage import TAG_BENTO_TAG
from airflow_mlops_provider.operators.validation import REPORT_JSON
from airflow_mlops_provider.promotion import CHAMPION, alias_version
from airflow_mlops_provider.stack import LocalStack

DAG_ID = "continuous_training"
MODEL_NAME = "churn"
ROWS = 5_000
SEED = 2026


@dataclass(frozen=True)
class Week:
    number: int
    kind: WeekKind
    headline: str


WEEKS = (
    Week(1, "baseline", "a baseline batch: the first champion"),
    Week(2, "drift", "real drift: more month-to-month contracts, higher charges"),
    Week(3, "zero_fill", "days_since_last_login 38% null, zero-filled upstream"),
)


@dataclass
class Outcome:
    """What one week's run did, as read back from Airflow and MLflow."""

    week: Week
    run_id: str
    run_state: str
    states: dict[str, str]
    validation: str
    drift: str
    candidate: str
    decision: str
    champion_version: str | None
    bento_tag: str | None
    champion_before: str | None = None
    problems: list[str] = field(default_factory=list)


def write_batches(home: Path, weeks: Sequence[Week] = WEEKS) -> dict[int, Path]:
    """Write each week's batch under ``home``; same seed, same bytes, so re-runs change nothing."""
    incoming = home / "data" / "incoming"
    return {
        w.number: write_week(
            incoming / f"churn-week-{w.number}.csv", w.kind, rows=ROWS, seed=SEED, week=w.number
        )
        for w in weeks
    }


class ProgressPrinter:
    """Print each task's state when it changes, so a long run shows what it is doing."""

    def __init__(self, prefix: str, out: Callable[[str], None] = print) -> None:
        self.prefix = prefix
        self.seen: dict[str, str] = {}
        self.out = out

    def __call__(self, states: dict[str, str]) -> None:
        for task_id, state in states.items():
            if state in ("none", "scheduled", "queued") or self.seen.get(task_id) == state:
                continue
            self.seen[task_id] = state
            self.out(f"{self.prefix} {task_id:24} {state}")


def _champion(client: Any, name: str) -> Any:
    """The champion's model version, or None when there is none yet."""
    version = alias_version(client, name, CHAMPION)
    return client.get_model_version(name, version) if version is not None else None


def _validation(states: dict[str, str], xcom: Any, report: Path | None) -> str:
    state = states.get("validate", "none")
    if state == "failed":
        failed = []
        if report is not None and report.exists():
            failed = [f"{f['column']} {f['check']}" for f in json.loads(report.read_text())["failed"]]
        return f"FAILED: {', '.join(failed)}" if failed else "FAILED"
    if isinstance(xcom, dict):
        return str(xcom.get("status", state))
    return state


def _report_path(home: Path, snapshot: Any) -> Path | None:
    """Where the validation task wrote its report: keyed by the fingerprint of the batch it read."""
    from airflow_mlops_provider.lineage import data_fingerprint

    if not isinstance(snapshot, dict) or not snapshot.get("batch_uri"):
        return None
    key = data_fingerprint(snapshot["batch_uri"]).replace(":", "-")
    return home / "validation" / key / REPORT_JSON


def _drift(states: dict[str, str], xcom: Any) -> str:
    if not isinstance(xcom, dict):
        return "-" if states.get("check_drift") in (None, "none", "upstream_failed", "skipped") else "?"
    if xcom.get("outcome") == "no_reference":
        return "no champion yet"
    drifted = xcom.get("drifted_columns") or []
    return f"{xcom.get('outcome')} ({xcom.get('drift_share', 0):.0%} of columns: {', '.join(drifted) or '-'})"


def _candidate(decision: Any) -> str:
    if not isinstance(decision, dict) or not decision.get("metrics"):
        return "-"
    overall = (decision["metrics"].get("candidate") or {}).get("overall") or {}
    shown = [f"{k} {overall[k]:.3f}" for k in ("roc_auc", "f1") if isinstance(overall.get(k), float)]
    return f"v{decision.get('version')}: " + ", ".join(shown) if shown else f"v{decision.get('version')}"


def _decision(states: dict[str, str], decision: Any) -> str:
    if states.get("validate") == "failed":
        return "not trained"
    if states.get("skip_retraining") == "success":
        return "skipped: already trained on this data"
    if isinstance(decision, dict):
        text = str(decision.get("decision"))
        reasons = decision.get("reasons") or []
        return f"{text}: {reasons[0]}" if text == "rejected" and reasons else text
    return states.get("train", "none")


def read_outcome(
    stack: LocalStack, client: Any, week: Week, run: dict, champion_before: str | None
) -> Outcome:
    """Read what a finished run did from its task states and XComs and from the registry."""
    run_id = run["dag_run_id"]
    states = stack.task_states(DAG_ID, run_id)
    xcoms = {
        task: stack.xcom(DAG_ID, run_id, task)
        for task in ("ingest", "validate", "check_drift", "promote", "gated.commit")
        if states.get(task) == "success"
    }
    decision = xcoms.get("promote") or xcoms.get("gated.commit")
    champion = _champion(client, MODEL_NAME)
    return Outcome(
        week=week,
        run_id=run_id,
        run_state=run["state"],
        states=states,
        validation=_validation(
            states, xcoms.get("validate"), _report_path(stack.config.home, xcoms.get("ingest"))
        ),
        drift=_drift(states, xcoms.get("check_drift")),
        candidate=_candidate(decision),
        decision=_decision(states, decision),
        champion_version=champion.version if champion else None,
        bento_tag=(champion.tags or {}).get(TAG_BENTO_TAG) if champion else None,
        champion_before=champion_before,
    )


def check(outcome: Outcome) -> list[str]:
    """What in this week's outcome contradicts the story (empty when it holds)."""
    s, n = outcome.states, outcome.week.number
    problems = []
    if outcome.week.kind == "zero_fill":
        if s.get("validate") != "failed":
            problems.append(f"week {n}: validation did not fail on zero-filled data ({s.get('validate')})")
        if s.get("train") not in ("upstream_failed", "skipped", "none", None):
            problems.append(f"week {n}: training ran after failed validation ({s.get('train')})")
        if outcome.champion_version != outcome.champion_before:
            problems.append(
                f"week {n}: champion changed from v{outcome.champion_before} to v{outcome.champion_version}"
            )
        return problems
    if outcome.run_state != "success":
        failed = sorted(t for t, state in s.items() if state == "failed")
        problems.append(f"week {n}: run {outcome.run_id} {outcome.run_state} (failed tasks: {failed})")
    if outcome.champion_version is None:
        problems.append(f"week {n}: no champion after the run")
    elif not outcome.bento_tag:
        problems.append(f"week {n}: champion v{outcome.champion_version} has no Bento")
    seen_drift = outcome.drift.startswith(("drift", "possible_drift"))
    if outcome.week.kind == "drift" and s.get("skip_retraining") != "success" and not seen_drift:
        problems.append(f"week {n}: the drift check did not report drift ({outcome.drift})")
    return problems


def table(outcomes: Sequence[Outcome]) -> str:
    """The story as a fixed-width table."""
    header = ("week", "validation", "drift", "candidate metrics", "decision", "champion", "Bento tag")
    rows = [
        (
            f"{o.week.number} {o.week.kind}",
            o.validation,
            o.drift,
            o.candidate,
            o.decision,
            f"v{o.champion_version}" if o.champion_version else "-",
            o.bento_tag or "-",
        )
        for o in outcomes
    ]
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def tell(stack: LocalStack, weeks: Sequence[Week] = WEEKS, timeout: float = 1800) -> bool:
    """Run the story on the running stack, print the table and how to go on; return whether it held."""
    from mlflow import MlflowClient

    cfg = stack.config
    client = MlflowClient(tracking_uri=cfg.mlflow_url, registry_uri=cfg.mlflow_url)
    batches = write_batches(cfg.home, weeks)
    outcomes = []
    for week in weeks:
        before = _champion(client, MODEL_NAME)
        print(f"\n== week {week.number}: {week.headline}\n   batch {batches[week.number]}", flush=True)
        conf = {"data_uri": str(batches[week.number]), "model_name": MODEL_NAME}
        run = stack.trigger(DAG_ID, conf)
        prefix = f"   [week {week.number}]"
        print(f"{prefix} run {run['dag_run_id']}", flush=True)
        run = stack.wait_for_run(
            DAG_ID,
            run["dag_run_id"],
            timeout,
            on_poll=ProgressPrinter(prefix, lambda m: print(m, flush=True)),
        )
        outcome = read_outcome(stack, client, week, run, before.version if before else None)
        outcome.problems = check(outcome)
        outcomes.append(outcome)
        print(f"{prefix} run {outcome.run_state}: {outcome.decision}", flush=True)
    print("\n" + table(outcomes))
    problems = [p for o in outcomes for p in o.problems]
    for problem in problems:
        print(f"NOT AS EXPECTED: {problem}", file=sys.stderr)
    bento = outcomes[-1].bento_tag if outcomes else None
    print(
        f"""
Airflow UI   {cfg.airflow_url}/dags/{DAG_ID}   (no login: local stack, loopback only)
MLflow UI    {cfg.mlflow_url}/#/models/{MODEL_NAME}
Serve the champion's Bento on http://127.0.0.1:3000 (see docs/bentoml.md for its API):
    .venv/bin/python -m airflow_mlops_provider.stack run -- bentoml serve {bento or "<bento tag>"} --port 3000
Stop everything: make down""",
        flush=True,
    )
    return not problems
