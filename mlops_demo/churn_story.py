"""The four-week churn story ``make demo`` tells on the running local stack.

    python -m mlops_demo.churn_story    # on a stack `make up` started

Week 1 is a baseline batch: validated, trained, promoted on the absolute gates, packaged as a Bento.
Week 2 has real drift (more month-to-month contracts, higher charges): the drift check says so, a
challenger is trained and becomes champion only if it passes the gates. Week 3 arrives with
``days_since_last_login`` 38% null and zero-filled upstream: validation fails closed, nothing is
trained or promoted, and the champion stays as it was. Week 4 serves the champion and closes the
loop (:mod:`.churn_live`): its captured traffic shows no drift, the outcomes that arrive show that it
is now wrong, and the decay it finds retrains, promotes and packages a new champion.

Each week is one ``continuous_training`` run, triggered through the Airflow REST API with the batch
as ``data_uri``; the outcome is read back from the run's task states and from the decision log in
MLflow (:mod:`airflow_mlops_provider.decisions`), checked against the story, and printed as that
log's summary table: the same table ``python -m airflow_mlops_provider.decisions churn`` prints. The batches are generated with fixed
seeds, so a second ``make demo`` sends the same bytes: the DAG recognises data it already trained
on, and no model version or Bento is added.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from airflow_mlops_provider.decisions import Row, summarize, table
from airflow_mlops_provider.promotion import CHAMPION, alias_version
from mlops_demo.churn import WeekKind, write_week
from mlops_demo.churn_live import live_week
from mlops_demo.stack import LocalStack, StackConfig

DAG_ID = "continuous_training"
#: DAGs the demo runs before the story: quick checks that the stack can do its job.
PREFLIGHT_DAGS = ("mlflow_connection_check",)
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
    """What one week's run did: its task states from Airflow, its decisions from the decision log."""

    week: Week
    run_id: str
    run_state: str
    states: dict[str, str]
    row: Row
    champion_before: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def champion_version(self) -> str | None:
        return self.row.champion.removeprefix("v") if self.row.champion != "-" else None


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


def run_id_of(week: Week, now: datetime | None = None) -> str:
    """The DAG run id a week's run gets: readable in the summary, unique across demos."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S")
    return f"week{week.number}-{week.kind.replace('_', '-')}-{stamp}"


def check(outcome: Outcome) -> list[str]:
    """What in this week's outcome contradicts the story (empty when it holds)."""
    s, n, row = outcome.states, outcome.week.number, outcome.row
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
    elif row.bento == "-":
        problems.append(f"week {n}: champion v{outcome.champion_version} has no Bento")
    seen_drift = row.drift.startswith(("drift", "possible_drift"))
    if outcome.week.kind == "drift" and s.get("skip_retraining") != "success" and not seen_drift:
        problems.append(f"week {n}: the drift check did not report drift ({row.drift})")
    return problems


def tell(stack: LocalStack, weeks: Sequence[Week] = WEEKS, timeout: float = 1800) -> bool:
    """Run the story on the running stack, print the decision summary and how to go on; return
    whether it held."""
    from mlflow import MlflowClient

    cfg = stack.config
    client = MlflowClient(tracking_uri=cfg.mlflow_url, registry_uri=cfg.mlflow_url)
    batches = write_batches(cfg.home, weeks)
    outcomes = []
    for week in weeks:
        before = alias_version(client, MODEL_NAME, CHAMPION)
        print(f"\n== week {week.number}: {week.headline}\n   batch {batches[week.number]}", flush=True)
        conf = {"data_uri": str(batches[week.number]), "model_name": MODEL_NAME}
        run = stack.trigger(DAG_ID, conf, run_id=run_id_of(week))
        prefix = f"   [week {week.number}]"
        print(f"{prefix} run {run['dag_run_id']}", flush=True)
        run = stack.wait_for_run(
            DAG_ID,
            run["dag_run_id"],
            timeout,
            on_poll=ProgressPrinter(prefix, lambda m: print(m, flush=True)),
        )
        run_id = run["dag_run_id"]
        rows = summarize(client, MODEL_NAME, [run_id])
        row = rows[0] if rows else Row(run_id, "-", "-", "-", "-", "-", "no decision recorded", "-", "-")
        outcome = Outcome(week, run_id, run["state"], stack.task_states(DAG_ID, run_id), row, before)
        outcome.problems = check(outcome)
        outcomes.append(outcome)
        print(f"{prefix} run {outcome.run_state}: {row.decision}", flush=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    print(
        "\n== week 4: the champion is served; its customers' outcomes show decay that drift does not",
        flush=True,
    )
    live = live_week(
        stack,
        client,
        MODEL_NAME,
        stamp,
        lambda prefix: ProgressPrinter(prefix, lambda m: print(m, flush=True)),
        timeout,
    )
    live_rows = summarize(client, MODEL_NAME, live.run_ids) if live.run_ids else []
    print(f"\n$ python -m airflow_mlops_provider.decisions {MODEL_NAME} --run ... (this demo's runs)")
    print(table([o.row for o in outcomes] + live_rows))
    problems = [p for o in outcomes for p in o.problems] + live.problems
    for problem in problems:
        print(f"NOT AS EXPECTED: {problem}", file=sys.stderr)
    print(
        f"""
Airflow UI   {cfg.airflow_url}/dags/{DAG_ID}   (no login: local stack, loopback only)
MLflow UI    {cfg.mlflow_url}/#/models/{MODEL_NAME}
Every run's decisions, from MLflow:
    .venv/bin/python -m mlops_demo.stack run -- python -m airflow_mlops_provider.decisions {MODEL_NAME}
The champion's Bento answers on {cfg.bento_url} (docs/bentoml.md); what it serves is captured
(docs/monitoring.md), and model_monitor checks it daily:
    curl -s -X POST {cfg.bento_url}/predict -H 'Content-Type: application/json' -d '{{"rows": [...]}}'
Stop everything (the Bento too): make down""",
        flush=True,
    )
    return not problems


def demo(stack: LocalStack, dag_ids: Sequence[str] = PREFLIGHT_DAGS) -> bool:
    """Run the pre-flight DAGs, then tell the four-week churn story; return whether it held."""
    stack.wait_for_dag_processor()
    for dag_id in dag_ids:
        print(f"running {dag_id} ...", flush=True)
        run = stack.run_dag(dag_id)
        if run["state"] != "success":
            print(f"{dag_id} run {run['dag_run_id']} {run['state']}: see the Airflow UI", file=sys.stderr)
            return False
    return tell(stack)


def main() -> int:
    return 0 if demo(LocalStack(StackConfig.from_env())) else 1


if __name__ == "__main__":
    sys.exit(main())
