"""Partitioned profiles: the split, the merge's exactness against a single pass, and its refusals."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from airflow_mlops_provider.data.datasets import DatasetError, read_dataframe
from airflow_mlops_provider.data.partitions import (
    PartitionPlan,
    PartitionProfile,
    merge_partitions,
    parse_size,
    plan_partitions,
    profile_partition,
)
from airflow_mlops_provider.data.profiles import profile_dataset
from airflow_mlops_provider.lineage import data_fingerprint

ROWS = 12_000


def _frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 1, rows)
    income[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "id": np.arange(rows) + seed * rows,
            "income": income.round(2),
            "age": rng.integers(18, 90, rows),
            "plan": rng.choice(["basic", "plus", "pro", "enterprise"], rows, p=[0.5, 0.3, 0.15, 0.05]),
            # Many distinct strings: beyond the exact-categories limit, so sketched.
            "city": [f"city-{v}" for v in rng.zipf(1.5, rows) % 3000],
            "seen_at": pd.Timestamp("2026-11-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 86400 * 7, rows), "s"),
        }
    )


def _mapped(uri: str, **kwargs) -> tuple[PartitionPlan, object]:
    """Plan, profile every partition (through its serialized form, as the tasks store it) and merge."""
    plan = PartitionPlan.from_json(plan_partitions(uri, **kwargs).to_json())
    stored = {key: PartitionProfile.from_bytes(profile_partition(plan, key).to_bytes()) for key in plan.keys}
    return plan, merge_partitions(plan, stored)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three daily CSV partitions, the last big enough to be cut into byte ranges."""
    root = tmp_path_factory.mktemp("batch")
    for day, rows in (("2026-11-01", 3_000), ("2026-11-02", 3_000), ("2026-11-03", 6_000)):
        path = root / f"date={day}" / "part-0.csv"
        path.parent.mkdir(parents=True)
        _frame(rows, seed=int(day[-1])).to_csv(path, index=False)
    return root


def _sketch(profile, column: str, metric: str):
    return profile.view.get_column(column).get_metric(metric)


def test_a_partitioned_profile_matches_a_single_pass_within_each_sketch_bound(dataset):
    single = profile_dataset(str(dataset), timestamp_columns=["seen_at"])
    plan, merged = _mapped(str(dataset), partition_size="200KB", timestamp_columns=["seen_at"])
    # Two small files packed together would exceed 200 KB: each is its own; the big one is cut.
    assert len(plan.partitions) > 3
    assert any(f.byte_range for p in plan.partitions for f in p.files)
    truth = read_dataframe(str(dataset))

    a, b = merged.summary, single.summary
    assert (a.rows, a.columns, a.files, a.timestamp_columns) == (
        b.rows,
        b.columns,
        b.files,
        b.timestamp_columns,
    )
    assert a.rows == len(truth) == ROWS
    assert a.data_fingerprint == b.data_fingerprint == data_fingerprint(dataset)
    for name in a.columns:
        x, y = a.column_stats[name], b.column_stats[name]
        # Exact: counts, nulls, types, min and max, and the categories of a low-cardinality column.
        assert (x.count, x.null_count, x.types, x.min, x.max) == (
            y.count,
            y.null_count,
            y.types,
            y.min,
            y.max,
        ), name
        assert x.categories == y.categories, name
        assert x.null_count == int(truth[name].isna().sum()), name
    assert a.column_stats["plan"].categories == truth["plan"].value_counts().to_dict()

    # Quantiles: each merged KLL quantile's true rank is within the sketch's stated rank error.
    for name in ("income", "age", "id"):
        kll = _sketch(merged, name, "distribution").kll.value
        values = np.sort(truth[name].dropna().to_numpy(dtype=float))
        error = kll.normalized_rank_error(False)
        for q, v in zip(
            (0.05, 0.25, 0.5, 0.75, 0.95), kll.get_quantiles([0.05, 0.25, 0.5, 0.75, 0.95]), strict=True
        ):
            # With ties the value covers a range of ranks: q must fall in it, give or take the error.
            below = np.searchsorted(values, v, side="left") / len(values)
            up_to = np.searchsorted(values, v, side="right") / len(values)
            assert below - error <= q <= up_to + error, (name, q, below, up_to, error)

    # Cardinality: the true number of distinct values lies within the HLL's 3-sigma bounds.
    for name in ("id", "age", "city"):
        hll = _sketch(merged, name, "cardinality").hll.value
        distinct = truth[name].nunique()
        assert hll.get_lower_bound(3) <= distinct <= hll.get_upper_bound(3), name

    # Frequent items: each of the true top cities' counts lies within the sketch's bounds.
    items = _sketch(merged, "city", "frequent_items").frequent_strings.value
    for city, count in truth["city"].value_counts().head(10).items():
        assert items.get_lower_bound(city) <= count <= items.get_upper_bound(city), city


def test_a_csv_is_cut_on_record_boundaries_never_inside_a_quoted_newline(tmp_path):
    rows = 4_000
    notes = [f'line one\nline "two" of {i}' if i % 3 else f"plain {i}" for i in range(rows)]
    frame = pd.DataFrame({"id": range(rows), "note": notes, "x": np.linspace(0, 1, rows)})
    path = tmp_path / "notes.csv"
    frame.to_csv(path, index=False)
    plan, merged = _mapped(str(path), partition_size="8KB")
    cuts = [f.byte_range[1] for p in plan.partitions for f in p.files][1:]
    assert len(cuts) > 10
    data = path.read_bytes()
    # Every cut follows a newline that ends a record: an even number of quotes before it.
    assert all(data[c - 1 : c] == b"\n" and data[:c].count(b'"') % 2 == 0 for c in cuts)
    single = profile_dataset(str(path))
    assert merged.summary.rows == single.summary.rows == rows
    assert merged.summary.column_stats["note"].count == rows
    assert merged.summary.column_stats["note"].types == single.summary.column_stats["note"].types
    assert merged.summary.data_fingerprint == single.summary.data_fingerprint


def test_a_parquet_file_is_split_by_row_groups(tmp_path):
    path = tmp_path / "batch.parquet"
    _frame().to_parquet(path, index=False, row_group_size=1_000)
    plan, merged = _mapped(str(path), partition_size="40KB")
    groups = [f.row_groups for p in plan.partitions for f in p.files]
    assert len(groups) > 2
    assert (groups[0][0], groups[-1][1]) == (0, 12)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(groups))
    single = profile_dataset(str(path))
    assert merged.summary.rows == single.summary.rows == ROWS
    assert merged.summary.data_fingerprint == single.summary.data_fingerprint
    assert (
        merged.summary.column_stats["income"].null_count == single.summary.column_stats["income"].null_count
    )


def test_small_files_are_packed_and_unsplittable_files_stay_whole(tmp_path):
    for i in range(6):
        _frame(200, seed=i).to_csv(tmp_path / f"part-{i}.csv", index=False)
    _frame(3_000, seed=9).to_csv(tmp_path / "zz-big.csv.gz", index=False)
    plan = plan_partitions(str(tmp_path), partition_size="100KB")
    sizes = [len(p.files) for p in plan.partitions]
    assert sum(sizes) == 7
    assert max(sizes) > 1
    gz = [f for p in plan.partitions for f in p.files if f.name.endswith(".gz")]
    assert [f.is_slice for f in gz] == [False]
    # Each file is digested by exactly one partition.
    digested = [name for p in plan.partitions for name in p.digests]
    assert sorted(digested) == sorted(name for _, name in plan.files)


def test_a_retried_partition_is_counted_once(dataset):
    plan = plan_partitions(str(dataset), partition_size="200KB")
    stored = {key: profile_partition(plan, key).to_bytes() for key in plan.keys}
    # A retry of the second partition writes its key's profile again: it replaces, never adds.
    stored[plan.keys[1]] = profile_partition(plan, plan.keys[1]).to_bytes()
    merged = merge_partitions(plan, {k: PartitionProfile.from_bytes(v) for k, v in stored.items()})
    assert merged.summary.rows == ROWS


def test_a_missing_partition_is_refused_by_name(dataset):
    plan = plan_partitions(str(dataset), partition_size="200KB")
    profiles = {key: profile_partition(plan, key) for key in plan.keys}
    profiles[plan.keys[2]] = None
    with pytest.raises(
        DatasetError, match=rf"partition '{plan.keys[2]}' \(date=2026-11-0\d/part-0.csv.*has no profile"
    ):
        merge_partitions(plan, profiles)
    del profiles[plan.keys[2]]
    with pytest.raises(DatasetError, match=f"partition '{plan.keys[2]}'"):
        merge_partitions(plan, profiles)


def test_a_profile_of_another_plan_or_partition_is_refused(dataset):
    plan = plan_partitions(str(dataset), partition_size="200KB", run_key="run-1")
    other = plan_partitions(str(dataset), partition_size="200KB", run_key="run-2")
    assert plan.plan_id != other.plan_id
    profiles = {key: profile_partition(plan, key) for key in plan.keys}
    stale = dict(profiles, **{plan.keys[0]: profile_partition(other, other.keys[0])})
    with pytest.raises(
        DatasetError, match=f"made for .* of plan {other.plan_id}, not for plan {plan.plan_id}"
    ):
        merge_partitions(plan, stale)
    swapped = dict(profiles, **{plan.keys[0]: profiles[plan.keys[1]]})
    with pytest.raises(DatasetError, match=f"stored for partition '{plan.keys[0]}'"):
        merge_partitions(plan, swapped)
    with pytest.raises(DatasetError, match="are not partitions of plan"):
        merge_partitions(plan, {**profiles, "p99999": profiles[plan.keys[0]]})


def test_a_damaged_partition_profile_is_refused():
    with pytest.raises(DatasetError, match="is not a partition profile"):
        PartitionProfile.from_bytes(b"PAR1...", where="s3://b/p00000.partition")
    with pytest.raises(DatasetError, match="is damaged"):
        PartitionProfile.from_bytes(b"mlops-partition-profile/1\n{not json\nxx")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(1024, 1024, id="bytes"),
        pytest.param("128MiB", 128 * 1024**2, id="mebibytes"),
        pytest.param("1.5 GB", 1_500_000_000, id="gigabytes"),
        pytest.param("200kb", 200_000, id="lowercase"),
    ],
)
def test_partition_sizes_parse(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["big", "12 parsecs", "0", "-5MB", ""])
def test_a_partition_size_that_is_not_a_size_is_refused(value):
    with pytest.raises(DatasetError, match="partition size"):
        parse_size(value)
