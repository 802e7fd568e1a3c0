"""The partitioned-profile operators executed directly: plan, one task per partition, merge."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_mlops_provider.exceptions import DatasetReadError
from airflow_mlops_provider.lineage import data_fingerprint
from airflow_mlops_provider.operators.profiling import (
    WhylogsPartitionPlanOperator,
    WhylogsPartitionProfileOperator,
    WhylogsProfileMergeOperator,
    WhylogsProfileOperator,
    partition_profile_uri,
)
from mlops_demo.churn import write_week

CONTEXT = {"dag": SimpleNamespace(dag_id="test"), "run_id": "manual__1"}


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("batch")
    for day in range(1, 4):
        write_week(root / f"date=2026-11-0{day}" / "part-0.csv", "baseline", rows=2_000, seed=day, week=day)
    return root


def _plan(batch: Path, staging: Path, run_id: str = "manual__1") -> list[dict[str, str]]:
    return WhylogsPartitionPlanOperator(
        task_id="plan", dataset_uri=str(batch), partition_size="100KB", staging_uri=str(staging)
    ).execute({**CONTEXT, "run_id": run_id})


def _profile_all(entries: list[dict[str, str]]) -> list[dict]:
    return [WhylogsPartitionProfileOperator(task_id="pp", partition=e).execute(CONTEXT) for e in entries]


def _merge(entries, output: Path) -> dict:
    return WhylogsProfileMergeOperator(task_id="merge", partitions=entries, output_uri=str(output)).execute(
        CONTEXT
    )


def test_the_merged_profile_is_what_a_single_task_writes(batch, tmp_path):
    entries = _plan(batch, tmp_path / "staging")
    assert len(entries) > 3  # each ~200 KB day is cut in two or more
    assert json.loads(json.dumps(entries)) == entries  # XCom-serialisable
    results = _profile_all(entries)
    assert sum(r["rows"] for r in results) == 6_000
    assert [r["profile_uri"] for r in results] == [
        partition_profile_uri(e["plan_uri"], e["key"]) for e in entries
    ]
    merged = _merge(entries, tmp_path / "merged")
    single = WhylogsProfileOperator(
        task_id="p", dataset_uri=str(batch), output_uri=str(tmp_path / "single")
    ).execute(CONTEXT)
    assert set(merged) == set(single) | {"partitions"}
    assert merged["partitions"] == len(entries)
    assert (merged["rows"], merged["columns"], merged["data_fingerprint"]) == (
        single["rows"],
        single["columns"],
        single["data_fingerprint"],
    )
    assert merged["data_fingerprint"] == data_fingerprint(batch)
    a = json.loads(Path(merged["summary_uri"]).read_text())
    b = json.loads(Path(single["summary_uri"]).read_text())
    for column, stats in b["column_stats"].items():
        for key in ("count", "null_count", "types", "min", "max", "categories"):
            assert a["column_stats"][column][key] == stats[key], (column, key)


def test_the_merge_defaults_to_the_content_addressed_profile_location(batch, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    entries = WhylogsPartitionPlanOperator(task_id="plan", dataset_uri=str(batch)).execute(CONTEXT)
    assert entries[0]["plan_uri"].startswith(str(tmp_path / "profiles" / "_partitions"))
    _profile_all(entries)
    merged = WhylogsProfileMergeOperator(task_id="merge", partitions=entries).execute(CONTEXT)
    key = data_fingerprint(batch).replace(":", "-")
    assert merged["profile_uri"] == str(tmp_path / "profiles" / key / "profile.bin")


def test_a_retried_partition_task_replaces_its_profile_and_is_counted_once(batch, tmp_path):
    entries = _plan(batch, tmp_path / "staging")
    _profile_all(entries)
    again = WhylogsPartitionProfileOperator(task_id="pp", partition=entries[1]).execute(CONTEXT)
    assert again["profile_uri"] == partition_profile_uri(entries[1]["plan_uri"], entries[1]["key"])
    assert len(list(Path(again["profile_uri"]).parent.glob("*.partition"))) == len(entries)
    assert _merge(entries, tmp_path / "merged")["rows"] == 6_000


def test_a_partition_whose_task_failed_stops_the_merge_naming_it(batch, tmp_path):
    entries = _plan(batch, tmp_path / "staging")
    _profile_all(entries)
    missing = entries[2]
    Path(partition_profile_uri(missing["plan_uri"], missing["key"])).unlink()
    with pytest.raises(
        DatasetReadError, match=rf"partition '{missing['key']}' \(date=2026-11-0\d/part-0.csv bytes"
    ):
        _merge(entries, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_each_run_has_its_own_plan_and_never_merges_another_runs_partitions(batch, tmp_path):
    first = _plan(batch, tmp_path / "staging", run_id="manual__1")
    second = _plan(batch, tmp_path / "staging", run_id="manual__2")
    assert first[0]["plan_uri"] != second[0]["plan_uri"]
    _profile_all(first)
    with pytest.raises(DatasetReadError, match="has no profile"):
        _merge(second, tmp_path / "merged")


def test_the_merge_refuses_partitions_of_two_plans(batch, tmp_path):
    first = _plan(batch, tmp_path / "staging", run_id="manual__1")
    second = _plan(batch, tmp_path / "staging", run_id="manual__2")
    with pytest.raises(DatasetReadError, match="expected the partitions of one plan"):
        _merge(first[:1] + second[1:], tmp_path / "merged")


def test_a_bad_dataset_fails_the_plan_with_a_provider_error(tmp_path):
    with pytest.raises(DatasetReadError, match="no dataset"):
        WhylogsPartitionPlanOperator(task_id="plan", dataset_uri=str(tmp_path / "nothing")).execute(CONTEXT)
    with pytest.raises(DatasetReadError, match="partition size"):
        WhylogsPartitionPlanOperator(
            task_id="plan", dataset_uri=str(tmp_path), partition_size="lots"
        ).execute(CONTEXT)
