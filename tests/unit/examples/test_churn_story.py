"""The story's verdicts and table, from outcomes as ``read_outcome`` builds them."""

from __future__ import annotations

import json

from airflow_mlops_provider.examples.churn_story import (
    WEEKS,
    Outcome,
    ProgressPrinter,
    _candidate,
    _decision,
    _validation,
    check,
    table,
    write_batches,
)
from airflow_mlops_provider.lineage import data_fingerprint

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


def outcome(week: int, states: dict[str, str], **kw) -> Outcome:
    values = {
        "run_id": f"manual__{week}",
        "run_state": "success",
        "validation": "passed",
        "drift": "drift (38% of columns: contract)",
        "candidate": "v1: roc_auc 0.780",
        "decision": "promoted",
        "champion_version": "1",
        "bento_tag": "churn:v1",
        **kw,
    }
    return Outcome(week=WEEKS[week - 1], states=states, **values)


def test_the_story_holds_when_each_week_does_what_it_should():
    assert check(outcome(1, TRAINED, drift="no champion yet")) == []
    assert check(outcome(2, TRAINED, champion_version="2", bento_tag="churn:v2")) == []
    blocked = outcome(3, BLOCKED, run_state="failed", champion_version="2", champion_before="2")
    assert check(blocked) == []


def test_a_zero_filled_week_that_trains_or_moves_the_champion_breaks_the_story():
    slipped = outcome(3, TRAINED, champion_version="3", champion_before="2")
    problems = check(slipped)
    assert any("validation did not fail" in p for p in problems)
    assert any("training ran" in p for p in problems)
    assert any("champion changed from v2 to v3" in p for p in problems)


def test_a_failed_normal_week_or_a_champion_without_bento_breaks_the_story():
    failed = outcome(1, {**TRAINED, "train": "failed"}, run_state="failed", champion_version=None)
    assert [p.split(":")[0] for p in check(failed)] == ["week 1", "week 1"]
    assert "failed tasks: ['train']" in check(failed)[0]
    assert check(outcome(2, TRAINED, bento_tag=None)) == ["week 2: champion v1 has no Bento"]
    assert "did not report drift" in check(outcome(2, TRAINED, drift="no_drift (0% of columns: -)"))[0]
    # Already trained on this batch: skipping is the point, drift or not.
    skipped = {**TRAINED, "skip_retraining": "success", "train": "skipped"}
    assert check(outcome(2, skipped, drift="no_drift (0% of columns: -)")) == []


def test_table_has_one_row_per_week_under_the_issue_columns():
    text = table([outcome(1, TRAINED), outcome(3, BLOCKED, validation="FAILED: x max_zero_fraction")])
    header, rule, first, second = text.splitlines()
    assert header.split() == [
        "week",
        "validation",
        "drift",
        "candidate",
        "metrics",
        "decision",
        "champion",
        "Bento",
        "tag",
    ]
    assert set(rule.replace(" ", "")) == {"-"}
    assert first.startswith("1 baseline")
    assert first.endswith("churn:v1")
    assert second.startswith("3 zero_fill")
    assert "FAILED: x max_zero_fraction" in second
    # Columns line up: every row starts its columns where the header does.
    assert first.index("promoted") == header.index("decision")


def test_cells_read_from_xcoms_and_reports(tmp_path):
    decision = {
        "version": "2",
        "decision": "rejected",
        "reasons": ["roc_auc 0.61 < 0.70"],
        "metrics": {"candidate": {"overall": {"roc_auc": 0.6134, "f1": 0.5}}},
    }
    assert _candidate(decision) == "v2: roc_auc 0.613, f1 0.500"
    assert _candidate(None) == "-"
    assert _decision(TRAINED, decision) == "rejected: roc_auc 0.61 < 0.70"
    assert _decision(BLOCKED, None) == "not trained"
    assert _decision({**TRAINED, "skip_retraining": "success"}, None).startswith("skipped")
    report = tmp_path / "validation_report.json"
    report.write_text(
        json.dumps({"failed": [{"column": "days_since_last_login", "check": "max_zero_fraction"}]})
    )
    assert _validation(BLOCKED, None, report) == "FAILED: days_since_last_login max_zero_fraction"
    assert _validation(BLOCKED, None, tmp_path / "missing.json") == "FAILED"
    assert _validation(TRAINED, {"status": "warned"}, None) == "warned"


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
