"""Week 4 of the churn story: the champion is served, the outcomes arrive, and they show decay.

The champion's Bento is served on the local stack and sent a week of customers over HTTP, one
request each with its own ``X-Request-ID`` (the key the outcomes are joined on); the Bento captures every prediction. These customers look
exactly like the ones the champion was trained on (no drift), but why they leave has changed
(``concept_shift`` in :mod:`.churn`). Their outcomes then arrive: as labels for the served requests
(``request_id, churned, labeled_at``), and as the week's labelled batch in the warehouse.

``model_monitor`` reads the capture, validates and checks it for drift (nothing), joins the labels
and finds the live ROC AUC far below the champion's offline figure: ``degraded``. Its event on the
``churn_performance`` asset schedules ``continuous_training``, which retrains on the new batch,
promotes through the gates and packages the new champion, which is then served in the old one's
place. A second telling finds the retrained champion right about these customers: ``ok``, and no
retraining.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlops_demo.churn import FEATURES, TARGET, WeekKind, generate_week
from mlops_demo.stack import LocalStack

MONITOR_DAG = "model_monitor"
TRAINING_DAG = "continuous_training"
WEEK = 4
KIND: WeekKind = "concept_shift"
ROWS = 3_000


@dataclass
class LiveOutcome:
    """What week 4 did: the monitor's run, and the retraining run its asset event scheduled."""

    monitor_run_id: str
    monitor_state: str
    monitor_states: dict[str, str]
    sent: int
    captured: int
    champion_before: str | None
    champion_after: str | None
    retrain_run_id: str | None = None
    retrain_state: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        return self.monitor_states.get("performance_degraded") == "success"

    @property
    def run_ids(self) -> list[str]:
        return [r for r in (self.monitor_run_id, self.retrain_run_id) if r]


def send_traffic(url: str, frame: Any, request_ids: list[str], clients: int = 8) -> list[Any]:
    """POST each customer of the frame to the Bento as its own request, with its own request id, from
    ``clients`` concurrent clients (the Bento batches them); return the predictions in order."""
    from concurrent.futures import ThreadPoolExecutor

    rows = json.loads(frame[FEATURES].to_json(orient="records"))

    def predict(i: int) -> Any:
        request = urllib.request.Request(
            f"{url}/predict",
            data=json.dumps({"rows": [rows[i]]}).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "X-Request-ID": request_ids[i]},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())[0]

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(predict, range(len(rows))))


def wait_for_capture(uri: str, model: str, version: str, since: datetime, rows: int, timeout: float) -> int:
    """Wait until the capture holds ``rows`` predictions of ``version`` since ``since``; return how many."""
    from airflow_mlops_provider.monitoring.captures import read_captures

    deadline = time.monotonic() + timeout
    while True:
        found = read_captures(uri, model, version=version, start=since, columns=["request_id"]).num_rows
        if found >= rows or time.monotonic() > deadline:
            return found
        time.sleep(1)


def wait_for_asset_run(stack: LocalStack, dag_id: str, after: str, timeout: float = 180) -> dict | None:
    """The run of ``dag_id`` an asset event scheduled after ``after`` (ISO time), once it exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = stack.api(
            "GET", f"/dags/{dag_id}/dagRuns?run_type=asset_triggered&order_by=-run_after&limit=5"
        ).get("dag_runs", [])
        later = [r for r in runs if (r.get("run_after") or "") >= after]
        if later:
            return later[0]
        time.sleep(2)
    return None


def live_week(
    stack: LocalStack,
    client: Any,
    model: str,
    stamp: str,
    on_poll: Callable[[str], Callable[[dict[str, str]], None]],
    timeout: float = 1800,
) -> LiveOutcome:
    """Serve the champion, send week 4, let its outcomes arrive, run the monitor and what it triggers."""
    from airflow_mlops_provider.lineage import TAG_BENTO_CAPTURE_URI, TAG_BENTO_TAG
    from airflow_mlops_provider.promotion import CHAMPION, alias_version

    cfg = stack.config
    champion = alias_version(client, model, CHAMPION)
    outcome = LiveOutcome("-", "not run", {}, 0, 0, champion, champion)
    if champion is None:
        outcome.problems.append(f"week {WEEK}: no champion to serve")
        return outcome
    tags = client.get_model_version(model, champion).tags
    bento, capture_uri = tags.get(TAG_BENTO_TAG), tags.get(TAG_BENTO_CAPTURE_URI)
    if not bento or not capture_uri:
        outcome.problems.append(
            f"week {WEEK}: champion v{champion} has no Bento that captures (tags {TAG_BENTO_TAG}, "
            f"{TAG_BENTO_CAPTURE_URI}); package it again"
        )
        return outcome

    print(f"   serving {bento} at {cfg.bento_url} (capture: {capture_uri})", flush=True)
    stack.serve_bento(bento)
    frame = generate_week(KIND, rows=ROWS, week=WEEK, seed=2026)
    request_ids = [f"{customer}.{stamp}" for customer in frame["customer_id"]]
    since = datetime.now(timezone.utc)
    predictions = send_traffic(cfg.bento_url, frame, request_ids)
    outcome.sent = len(predictions)
    outcome.captured = wait_for_capture(capture_uri, model, champion, since, ROWS, 60)
    print(f"   sent {outcome.sent} customers, one request each; {outcome.captured} captured", flush=True)
    if outcome.captured < ROWS:
        outcome.problems.append(f"week {WEEK}: {outcome.captured} of {ROWS} predictions captured")

    # The outcomes arrive: labels for what was served, and the week's batch in the warehouse.
    labels_dir = cfg.home / "data" / "labels"
    labels_dir.mkdir(parents=True, exist_ok=True)
    labels = frame.assign(request_id=request_ids, labeled_at=datetime.now(timezone.utc))
    labels[["request_id", TARGET, "labeled_at"]].to_csv(labels_dir / f"week{WEEK}-{stamp}.csv", index=False)
    frame.to_csv(_latest_batch(cfg.home), index=False)
    print(f"   outcomes arrived: {len(labels)} labels in {labels_dir}", flush=True)

    run = stack.trigger(
        MONITOR_DAG,
        {"model_name": model, "labels_uri": str(labels_dir)},
        run_id=f"week{WEEK}-monitor-{stamp}",
    )
    run = stack.wait_for_run(MONITOR_DAG, run["dag_run_id"], timeout, on_poll=on_poll(f"   [week {WEEK}]"))
    outcome.monitor_run_id, outcome.monitor_state = run["dag_run_id"], run["state"]
    outcome.monitor_states = stack.task_states(MONITOR_DAG, run["dag_run_id"])
    if outcome.monitor_state != "success":
        outcome.problems.append(
            f"week {WEEK}: {MONITOR_DAG} run {outcome.monitor_run_id} {outcome.monitor_state}"
        )
        return outcome
    performance = stack.xcom(MONITOR_DAG, outcome.monitor_run_id, "check_performance")
    status = performance.get("status") if isinstance(performance, dict) else None
    if status not in ("ok", "degraded"):
        reasons = performance.get("reasons") if isinstance(performance, dict) else None
        outcome.problems.append(f"week {WEEK}: the monitor decided nothing ({status}: {reasons})")
    if not outcome.degraded:
        return outcome

    retrain = wait_for_asset_run(stack, TRAINING_DAG, run.get("start_date") or "")
    if retrain is None:
        outcome.problems.append(f"week {WEEK}: decay was found, but no {TRAINING_DAG} run was scheduled")
        return outcome
    print(
        f"   [week {WEEK}] churn_performance scheduled {TRAINING_DAG} run {retrain['dag_run_id']}", flush=True
    )
    retrain = stack.wait_for_run(
        TRAINING_DAG, retrain["dag_run_id"], timeout, on_poll=on_poll(f"   [week {WEEK} retrain]")
    )
    outcome.retrain_run_id, outcome.retrain_state = retrain["dag_run_id"], retrain["state"]
    outcome.champion_after = alias_version(client, model, CHAMPION)
    new_bento = (
        client.get_model_version(model, outcome.champion_after).tags.get(TAG_BENTO_TAG)
        if outcome.champion_after
        else None
    )
    if outcome.retrain_state != "success":
        outcome.problems.append(
            f"week {WEEK}: retraining run {outcome.retrain_run_id} {outcome.retrain_state}"
        )
    elif outcome.champion_after == champion:
        outcome.problems.append(f"week {WEEK}: retrained, but v{champion} is still the champion")
    elif not new_bento:
        outcome.problems.append(f"week {WEEK}: the new champion v{outcome.champion_after} has no Bento")
    else:
        print(f"   serving the new champion's {new_bento} at {cfg.bento_url}", flush=True)
        stack.serve_bento(new_bento)
    return outcome


def _latest_batch(home: Path) -> Path:
    """Where ``continuous_training`` looks for new data when an asset event starts it."""
    path = home / "data" / "incoming" / "latest.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
