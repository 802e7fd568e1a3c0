"""The story's verdicts, from outcomes read back from Airflow and the decision log."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_mlops_provider.decisions import Row
from airflow_mlops_provider.lineage import data_fingerprint
from mlops_demo.churn_story import (
    WEEKS,
    Outcome,
    ProgressPrinter,
    check,
    run_id_of,
    write_batches,
)

TRAINED = {
    "ingest": "success",
    "validate": "success",
    "check_drift": "success",
    "decide": "success",
    "skip_retraining": "skipped",
    "train": "success",
    "promote": "success",
    "package_champion": "success",
}
BLOCKED = {**TRAINED, "validate": "failed", "train": "upstream_failed", "promote": "upstream_failed"}


def outcome(
    week: int, states: dict[str, str], run_state: str = "success", champion_before=None, **kw
) -> Outcome:
    cells = {
        "run": f"week{week}",
        "validation": "passed",
        "drift": "drift (38% of columns: contract)",
        "live": "-",
        "candidate": "v1 roc_auc 0.78",
        "gates": "passed 4/4",
        "decision": "promoted",
        "champion": "v1",
        "bento": "churn:v1",
        **kw,
    }
    return Outcome(WEEKS[week - 1], f"week{week}", run_state, states, Row(**cells), champion_before)


def test_the_story_holds_when_each_week_does_what_it_should():
    assert check(outcome(1, TRAINED, drift="no champion yet")) == []
    assert check(outcome(2, TRAINED, champion="v2", bento="churn:v2")) == []
    blocked = outcome(3, BLOCKED, run_state="failed", champion="v2", champion_before="2")
    assert check(blocked) == []


def test_a_zero_filled_week_that_trains_or_moves_the_champion_breaks_the_story():
    slipped = outcome(3, TRAINED, champion="v3", champion_before="2")
    problems = check(slipped)
    assert any("validation did not fail" in p for p in problems)
    assert any("training ran" in p for p in problems)
    assert any("champion changed from v2 to v3" in p for p in problems)


def test_a_failed_normal_week_or_a_champion_without_bento_breaks_the_story():
    failed = outcome(1, {**TRAINED, "train": "failed"}, run_state="failed", champion="-")
    assert [p.split(":")[0] for p in check(failed)] == ["week 1", "week 1"]
    assert "failed tasks: ['train']" in check(failed)[0]
    assert check(outcome(2, TRAINED, bento="-")) == ["week 2: champion v1 has no Bento"]
    assert "did not report drift" in check(outcome(2, TRAINED, drift="no_drift (0% of columns: -)"))[0]
    # Already trained on this batch: skipping is the point, drift or not.
    skipped = {**TRAINED, "skip_retraining": "success", "train": "skipped"}
    assert check(outcome(2, skipped, drift="no_drift (0% of columns: -)")) == []


def test_each_week_gets_a_readable_run_id_that_a_later_demo_does_not_reuse():
    first = run_id_of(WEEKS[2], datetime(2026, 12, 3, 7, 30, tzinfo=timezone.utc))
    assert first == "week3-zero-fill-20261203T073000"
    assert run_id_of(WEEKS[2], datetime(2026, 12, 3, 7, 31, tzinfo=timezone.utc)) != first


def test_batches_are_the_same_bytes_every_time(tmp_path):
    first = {n: data_fingerprint(p) for n, p in write_batches(tmp_path).items()}
    second = {n: data_fingerprint(p) for n, p in write_batches(tmp_path).items()}
    assert first == second
    assert len(set(first.values())) == 3


def test_progress_prints_each_task_state_change_once():
    lines: list[str] = []
    progress = ProgressPrinter("[w1]", lines.append)
    progress({"ingest": "queued", "validate": "none"})
    progress({"ingest": "running", "validate": "none"})
    progress({"ingest": "running", "validate": "none"})
    progress({"ingest": "success", "validate": "running"})
    assert [line.split() for line in lines] == [
        ["[w1]", "ingest", "running"],
        ["[w1]", "ingest", "success"],
        ["[w1]", "validate", "running"],
    ]
