"""Files as real upstreams produce them: partitions that disagree, infinities, BOMs, other separators,
duplicate names and formats under the wrong name. Each is refused with its file named, or profiled
and checked correctly; none passes quietly."""

from __future__ import annotations

import gzip
import json
import math
import re
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from airflow_mlops_provider.data.contract import (
    ColumnRule,
    DataContract,
    derive_contract,
    validate,
)
from airflow_mlops_provider.data.datasets import DatasetError, iter_chunks, read_dataframe, resolve
from airflow_mlops_provider.data.profiles import ColumnStats, ProfileSummary, profile_dataset

pytestmark = pytest.mark.filterwarnings("error")

CONTEXT: Any = {"dag": SimpleNamespace(dag_id="test"), "run_id": "manual__1"}
DAY1 = "date=2026-11-01/part-0.csv"
DAY2 = "date=2026-11-02/part-0.csv"


def _partitions(root, *frames: pd.DataFrame, suffix: str = "csv"):
    for day, frame in enumerate(frames, start=1):
        path = root / f"date=2026-11-0{day}" / f"part-0.{suffix}"
        path.parent.mkdir(parents=True)
        if suffix == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    return root


def _good(n: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"a": range(n), "b": [float(i) for i in range(n)]})


def _profile(uri):
    return profile_dataset(str(uri))


def _read(uri):
    return read_dataframe(str(uri))


def _mapped_profile(uri):
    """Profile as mapped tasks do: every file its own partition, each cut at every record."""
    from airflow_mlops_provider.data.partitions import merge_partitions, plan_partitions, profile_partition

    plan = plan_partitions(str(uri), partition_size=1)
    return merge_partitions(plan, {key: profile_partition(plan, key) for key in plan.keys})


READERS = [
    pytest.param(_profile, id="profile_dataset"),
    pytest.param(_read, id="read_dataframe"),
    pytest.param(_mapped_profile, id="partitioned"),
]


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize(
    ("second", "suffix", "message"),
    [
        pytest.param(
            _good().drop(columns=["b"]),
            "csv",
            rf"\(partition '{DAY2}'\) lacks column\(s\) \['b'\] that partition '{DAY1}' has",
            id="missing-column",
        ),
        pytest.param(
            _good().assign(c=1),
            "csv",
            rf"\(partition '{DAY2}'\) has column\(s\) \['c'\] that partition '{DAY1}' lacks",
            id="extra-column",
        ),
        pytest.param(
            _good().assign(b=["1.5"] * 9 + ["twelve"]),
            "csv",
            rf"\(partition '{DAY2}'\): column 'b' is text \(e.g. 'twelve'\), but numeric in partition '{DAY1}'",
            id="text-in-numeric-column",
        ),
        pytest.param(
            _good().drop(columns=["b"]),
            "parquet",
            r"\(partition 'date=2026-11-02/part-0.parquet'\) lacks column\(s\) \['b'\]",
            id="parquet-missing-column",
        ),
        pytest.param(
            _good().assign(b="x"),
            "parquet",
            r"\(partition 'date=2026-11-02/part-0.parquet'\): column 'b' is text \(e.g. 'x'\), but numeric",
            id="parquet-text-in-numeric-column",
        ),
    ],
)
def test_a_partition_that_disagrees_with_the_others_is_refused_by_name(
    tmp_path, read, second, suffix, message
):
    root = _partitions(tmp_path, _good(), second, suffix=suffix)
    with pytest.raises(DatasetError, match=message):
        read(root)


@pytest.mark.parametrize(
    "profile", [pytest.param(_profile, id="single"), pytest.param(_mapped_profile, id="partitioned")]
)
def test_numbers_in_a_partition_after_text_in_the_first_are_refused_too(tmp_path, profile):
    root = _partitions(tmp_path, _good().assign(b="x"), _good())
    with pytest.raises(
        DatasetError, match=rf"\(partition '{DAY2}'\): column 'b' is numeric, but text in partition '{DAY1}'"
    ):
        profile(root)


def test_a_partition_missing_a_column_fails_the_validation_task(tmp_path):
    from airflow_mlops_provider.exceptions import DatasetReadError
    from airflow_mlops_provider.operators.validation import DataValidationOperator

    # Before: the missing half only lowered 'b''s count, and a 0% null ceiling passed.
    root = _partitions(tmp_path / "data", _good(), _good().drop(columns=["b"]))
    operator = DataValidationOperator(
        task_id="validate",
        dataset_uri=str(root),
        contract=DataContract(columns={"b": ColumnRule(max_null_fraction=0.0)}),
        report_uri=str(tmp_path / "report"),
    )
    with pytest.raises(DatasetReadError, match=rf"partition '{DAY2}'\) lacks column\(s\) \['b'\]"):
        operator.execute(CONTEXT)


@pytest.mark.parametrize(
    "profile", [pytest.param(_profile, id="single"), pytest.param(_mapped_profile, id="partitioned")]
)
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_an_all_null_column_in_one_partition_is_not_a_type_conflict(tmp_path, suffix, profile):
    empty = _good().assign(b=[None] * 10)
    # Column order may differ between partitions.
    root = _partitions(tmp_path, _good(), empty, _good()[["b", "a"]], suffix=suffix)
    summary = profile(root).summary
    b = summary.column_stats["b"]
    assert (summary.rows, b.count, b.null_count) == (30, 30, 10)
    assert b.inferred_type == "integral"
    result = validate(DataContract(columns={"b": ColumnRule(max_null_fraction=0.1)}), summary)
    assert [r.message for r in result.failures] == ["column 'b' has 33.3% nulls, allowed at most 10.0%"]


def test_rows_before_a_type_change_deep_in_a_file_are_counted_once(tmp_path):
    # The text arrives after pyarrow has already handed out whole chunks; pandas re-reads after them.
    rows = [f"{i},{i}" for i in range(150_000)] + ["150000,twelve"]
    (tmp_path / "d.csv").write_text("a,b\n" + "\n".join(rows) + "\n")
    chunks = list(iter_chunks(resolve(str(tmp_path / "d.csv")), "csv", chunk_rows=10_000))
    assert pd.concat(chunks)["a"].tolist() == list(range(150_001))
    summary = profile_dataset(str(tmp_path / "d.csv"), chunk_rows=10_000).summary
    assert summary.rows == summary.column_stats["b"].count == 150_001


def _column(tmp_path, values: list[str], name: str = "d.csv"):
    path = tmp_path / name
    path.write_text("x,other\n" + "".join(f"{v},{i}\n" for i, v in enumerate(values)))
    return profile_dataset(str(path)).summary


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        pytest.param("inf", "max", id="inf"),
        pytest.param("Infinity", "max", id="Infinity"),
        pytest.param("-inf", "min", id="minus-inf"),
        pytest.param("-Infinity", "min", id="minus-Infinity"),
    ],
)
def test_infinities_are_profiled_and_fail_range_and_finite_rules(tmp_path, text, bound):
    summary = _column(tmp_path, ["1.5", text, "2.5"])
    x = summary.column_stats["x"]
    assert getattr(x, bound) == (math.inf if bound == "max" else -math.inf)
    # One infinity spoils whylogs' running moments for good: unknown, not NaN.
    assert (x.mean, x.stddev) == (None, None)
    contract = DataContract(columns={"x": ColumnRule(min_value=0, max_value=100, finite=True)})
    failed = {r.check: r.message for r in validate(contract, summary).failures}
    signed = "inf" if bound == "max" else "-inf"
    assert failed[f"{bound}_value"].startswith(f"column 'x' has {bound}imum {signed}, allowed at")
    assert "expected finite numbers (no inf or -inf)" in failed["finite"]
    assert ProfileSummary.from_json(summary.to_json()) == summary


def test_a_contract_derived_from_finite_data_fails_a_batch_with_an_infinity(tmp_path):
    reference = _column(tmp_path, [str(i / 2) for i in range(40)], "reference.csv")
    batch = _column(tmp_path, [str(i / 2) for i in range(39)] + ["Infinity"], "batch.csv")
    contract = derive_contract(reference)
    assert validate(contract, reference).status == "passed"
    result = validate(contract, batch)
    assert result.status == "failed"
    assert [(r.column, r.check) for r in result.failures] == [("x", "finite")]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(["1", "inf", "2", "3"], id="inf-max"),
        pytest.param(["-inf", "1", "inf", "2"], id="both-infinities"),
        pytest.param(["inf", "inf", "inf"], id="only-inf"),
        pytest.param(["1e308", "-1e308", "1", "2"], id="range-overflows"),
    ],
)
def test_a_contract_derived_from_non_finite_data_has_no_nan_bounds_and_passes_its_own_data(tmp_path, values):
    reference = _column(tmp_path, values)
    rule = derive_contract(reference).columns["x"]
    bounds = [rule.min_value, rule.max_value, *(b for pair in (rule.quantiles or {}).values() for b in pair)]
    assert not any(b is not None and math.isnan(b) for b in bounds), bounds
    result = validate(derive_contract(reference), reference)
    assert result.status == "passed", [r.message for r in result.failures + result.warnings]


def test_huge_magnitudes_are_profiled_exactly_and_reported_readably(tmp_path):
    # 1e300 is a whole number: it used to be cast to int64 and crash the profile.
    summary = _column(tmp_path, ["1", "1e300", "-1e300", "2"])
    x = summary.column_stats["x"]
    assert (x.min, x.max, x.inferred_type) == (-1e300, 1e300, "fractional")
    assert x.stddev is None  # its square overflows
    result = validate(DataContract(columns={"x": ColumnRule(max_value=100)}), summary)
    assert [r.message for r in result.failures] == ["column 'x' has maximum 1e+300, allowed at most 100"]
    assert validate(derive_contract(summary), summary).status == "passed"


def test_a_nan_statistic_fails_closed():
    stats = ColumnStats(name="x", count=3, null_count=0, types={"fractional": 3}, min=math.nan, max=math.nan)
    summary = ProfileSummary(
        rows=3,
        columns=["x"],
        data_fingerprint="",
        data_uri="",
        files=1,
        timestamp_columns=[],
        column_stats={"x": stats},
    )
    contract = DataContract(columns={"x": ColumnRule(min_value=0, max_value=1, finite=True)})
    assert {r.check for r in validate(contract, summary).failures} == {"min_value", "max_value", "finite"}


@pytest.mark.parametrize(
    "path_text",
    [
        pytest.param("bom.csv", id="plain"),
        pytest.param("bom.csv.gz", id="gzip"),
    ],
)
def test_a_utf8_bom_does_not_stick_to_the_first_column(tmp_path, path_text):
    data = "\ufeffid,score\n1,0.5\n7,0.25\n".encode()
    path = tmp_path / path_text
    path.write_bytes(gzip.compress(data) if path_text.endswith(".gz") else data)
    summary = profile_dataset(str(path)).summary
    assert summary.columns == ["id", "score"]
    result = validate(DataContract(columns={"id": ColumnRule(max_value=5)}), summary)
    assert [r.message for r in result.failures] == ["column 'id' has maximum 7, allowed at most 5"]


def test_a_bom_in_a_file_pandas_rereads_and_in_one_partition_only(tmp_path, monkeypatch):
    from airflow_mlops_provider.data import datasets
    from airflow_mlops_provider.data.datasets import readers

    reread = []
    pandas_chunks = readers._pandas_csv_chunks

    def spy(f, chunk_rows, names):
        reread.append(f.name)
        return pandas_chunks(f, chunk_rows, names)

    monkeypatch.setattr(readers, "_pandas_csv_chunks", spy)
    # Text after pyarrow's first block, within the first chunk: this file is read again by pandas.
    n = 240_000
    rows = "".join(f"{i},{i:015d}\n" for i in range(n))
    assert len(rows) > datasets.BLOCK_BYTES
    (tmp_path / "p=1").mkdir()
    (tmp_path / "p=1" / "a.csv").write_bytes(("\ufeffid,b\n" + rows + "7,text\n").encode())
    (tmp_path / "p=2").mkdir()
    (tmp_path / "p=2" / "a.csv").write_text("id,b\n1,x\n")
    summary = profile_dataset(str(tmp_path)).summary
    assert reread == ["p=1/a.csv"]
    assert summary.columns == ["id", "b"]
    assert summary.column_stats["id"].count == n + 2


def test_a_file_pandas_rereads_keeps_pyarrow_s_name_for_an_unnamed_column(tmp_path):
    # pandas' to_csv() writes the index under an empty name; pandas reads it back as "Unnamed: 0".
    rows = "".join(f"{i},{i}\n" for i in range(150_000))
    (tmp_path / "p=1").mkdir()
    (tmp_path / "p=1" / "a.csv").write_text(",b\n" + rows + "7,text\n")
    (tmp_path / "p=2").mkdir()
    (tmp_path / "p=2" / "a.csv").write_text(",b\n1,x\n")
    summary = profile_dataset(str(tmp_path)).summary
    assert summary.columns == ["", "b"]
    assert summary.column_stats[""].count == 150_002


@pytest.mark.parametrize(
    ("separator", "rows"),
    [
        pytest.param(";", "1;2\n3;4\n", id="semicolon"),
        pytest.param(";", "1,5;2,25\n3;4\n", id="semicolon-decimal-comma"),
        pytest.param("\t", "1\t2\n3\t4\n", id="tab"),
        pytest.param("|", "1|2\n3|4\n", id="pipe"),
    ],
)
def test_a_file_with_another_separator_is_named_as_such(tmp_path, separator, rows):
    path = tmp_path / "export.csv"
    path.write_text(f"id{separator}score\n{rows}")
    expected = f"dataset file '{path}' looks like {separator!r}-separated: its header"
    with pytest.raises(DatasetError, match=re.escape(expected)):
        profile_dataset(str(path))


def test_a_single_column_file_is_still_read(tmp_path):
    (tmp_path / "ids.csv").write_text("customer id\nc-1\nc-2\n")
    assert read_dataframe(str(tmp_path / "ids.csv"))["customer id"].tolist() == ["c-1", "c-2"]


def test_duplicate_column_names_are_refused_by_name(tmp_path):
    (tmp_path / "d.csv").write_text("id,score,id,note,score\n1,2,3,x,4\n")
    with pytest.raises(DatasetError, match=r"d.csv' has duplicate column name\(s\) \['id', 'score'\]"):
        profile_dataset(str(tmp_path / "d.csv"))


def test_duplicate_column_names_in_parquet_are_refused_by_name(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]), tmp_path / "d.parquet"
    )
    with pytest.raises(DatasetError, match=r"d.parquet' has duplicate column name\(s\) \['a'\]"):
        read_dataframe(str(tmp_path / "d.parquet"))


def test_parquet_under_a_csv_name_is_named_and_reads_with_the_advised_format(tmp_path):
    _good().to_parquet(tmp_path / "x.csv")
    with pytest.raises(DatasetError) as err:
        profile_dataset(str(tmp_path / "x.csv"))
    assert str(err.value) == (
        f"dataset file '{tmp_path / 'x.csv'}' has a .csv name but is a Parquet file (it starts with PAR1); "
        "rename it or pass file_format='parquet'"
    )
    assert profile_dataset(str(tmp_path / "x.csv"), file_format="parquet").summary.rows == 10


def test_csv_under_a_parquet_name_is_named_and_reads_with_the_advised_format(tmp_path):
    _good().to_csv(tmp_path / "x.parquet", index=False)
    with pytest.raises(DatasetError) as err:
        profile_dataset(str(tmp_path / "x.parquet"))
    assert str(err.value) == (
        f"dataset file '{tmp_path / 'x.parquet'}' has a .parquet name but looks like CSV text "
        "(it starts with b'a,b\\n0,0.0\\n1,1.0\\n', not PAR1); rename it or pass file_format='csv'"
    )
    assert profile_dataset(str(tmp_path / "x.parquet"), file_format="csv").summary.rows == 10


def test_an_explicit_format_that_does_not_match_the_bytes_is_named(tmp_path):
    _good().to_parquet(tmp_path / "data.txt")
    with pytest.raises(
        DatasetError, match=r"data.txt' is read as CSV but is a Parquet file .*; pass file_format='parquet'$"
    ):
        profile_dataset(str(tmp_path / "data.txt"), file_format="csv")


def test_a_parquet_partition_under_a_csv_name_is_named_in_a_directory(tmp_path):
    root = _partitions(tmp_path, _good(), _good())
    _good().to_parquet(root / DAY2)
    with pytest.raises(DatasetError, match=rf"{re.escape(DAY2)}' has a .csv name but is a Parquet file"):
        read_dataframe(str(root))


def test_parquet_under_a_csv_name_is_named_on_remote_storage(tmp_path):
    import fsspec

    _good().to_parquet(tmp_path / "x.parquet")
    with fsspec.open("memory://bucket/hostile/x.csv", "wb") as handle:
        handle.write((tmp_path / "x.parquet").read_bytes())
    with pytest.raises(
        DatasetError, match=r"'memory://bucket/hostile/x.csv' has a .csv name but is a Parquet"
    ):
        profile_dataset("memory://bucket/hostile/x.csv")


def test_summary_json_of_an_infinite_column_round_trips(tmp_path):
    summary = _column(tmp_path, ["1", "-inf", "inf"])
    raw = json.loads(summary.to_json())
    assert (raw["column_stats"]["x"]["min"], raw["column_stats"]["x"]["max"]) == (-math.inf, math.inf)
    assert raw["column_stats"]["x"]["mean"] is None
