from __future__ import annotations

import os

import pandas as pd
import pytest

from airflow_mlops_provider.data.datasets import (
    DatasetError,
    detect_format,
    fingerprint,
    iter_chunks,
    read_dataframe,
    resolve,
)
from airflow_mlops_provider.data.profiles import profile_dataset
from airflow_mlops_provider.lineage import data_fingerprint


def _frame(n: int = 100) -> pd.DataFrame:
    return pd.DataFrame({"a": range(n), "b": [f"x{i % 3}" for i in range(n)]})


def test_chunks_cover_every_row_once(tmp_path):
    _frame(1_050).to_csv(tmp_path / "d.csv", index=False)
    files = resolve(str(tmp_path / "d.csv"))
    chunks = list(iter_chunks(files, "csv", chunk_rows=100))
    assert [len(c) for c in chunks] == [100] * 10 + [50]
    assert pd.concat(chunks)["a"].tolist() == list(range(1_050))


def test_directory_of_parquet_partitions_reads_in_name_order_and_skips_markers(tmp_path):
    for part in (2, 1):
        (tmp_path / f"part={part}").mkdir()
        _frame(10).assign(part=part).to_parquet(tmp_path / f"part={part}" / "data.parquet")
    (tmp_path / "_SUCCESS").write_text("")
    files = resolve(str(tmp_path))
    assert [f.name for f in files] == ["part=1/data.parquet", "part=2/data.parquet"]
    frame = read_dataframe(str(tmp_path))
    assert frame["part"].tolist() == [1] * 10 + [2] * 10


def test_glob_selects_the_matching_files(tmp_path):
    for i in range(3):
        _frame(5).to_csv(tmp_path / f"week{i}.csv", index=False)
    (tmp_path / "notes.txt").write_text("not data")
    assert [f.name for f in resolve(f"{tmp_path}/week*.csv")] == ["week0.csv", "week1.csv", "week2.csv"]


def test_fingerprint_follows_content_not_location(tmp_path):
    _frame().to_csv(tmp_path / "a.csv", index=False)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "b.csv").write_bytes((tmp_path / "a.csv").read_bytes())
    fp = fingerprint(resolve(str(tmp_path / "a.csv")))
    assert (
        fp == fingerprint(resolve(str(tmp_path / "copy" / "b.csv"))) == data_fingerprint(tmp_path / "a.csv")
    )
    _frame(101).to_csv(tmp_path / "a.csv", index=False)
    assert fingerprint(resolve(str(tmp_path / "a.csv"))) != fp


def test_remote_scheme_reads_through_fsspec_with_the_same_fingerprint(tmp_path):
    import fsspec

    _frame(40).to_csv(tmp_path / "a.csv", index=False)
    data = (tmp_path / "a.csv").read_bytes()
    with fsspec.open("memory://bucket/data/a.csv", "wb") as handle:
        handle.write(data)
    files = resolve("memory://bucket/data/a.csv")
    assert fingerprint(files) == data_fingerprint(tmp_path / "a.csv")
    profile = profile_dataset("memory://bucket/data/a.csv")
    assert profile.summary.rows == 40


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda p: p / "nope.csv", r"no dataset at '.*nope.csv': no such file", id="missing-path"
        ),
        pytest.param(
            lambda p: _write(p / "empty.csv", b""), r"empty.csv' is empty \(0 bytes\)", id="empty-file"
        ),
        pytest.param(
            lambda p: _write(p / "header.csv", b"a,b\n"),
            r"header.csv' has a header but no rows",
            id="header-only",
        ),
        pytest.param(
            lambda p: _write(p / "bin.csv", bytes(range(256)) * 40),
            r"bin.csv. is not valid CSV: ArrowInvalid",
            id="binary-garbage",
        ),
        pytest.param(
            lambda p: _write(p / "cut.parquet", b"PAR1" + bytes(64)),
            r"cut.parquet' is not valid PARQUET",
            id="corrupt-parquet",
        ),
        pytest.param(lambda p: _symlink(p / "gone.csv"), r"no dataset at '.*gone.csv'", id="dangling-link"),
        pytest.param(
            lambda p: _write(p / "data.json", b"{}"),
            r"cannot tell the format of .*data.json",
            id="unknown-suffix",
        ),
        pytest.param(lambda p: _mkdir(p / "empty_dir"), r"no dataset files at", id="empty-directory"),
    ],
)
def test_bad_datasets_fail_with_a_clear_error(tmp_path, make, message):
    uri = str(make(tmp_path))
    with pytest.raises(DatasetError, match=message):
        profile_dataset(uri)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _symlink(path):
    os.symlink(path.parent / "does-not-exist.csv", path)
    return path


def _mkdir(path):
    path.mkdir()
    return path


def test_a_column_whose_type_changes_after_the_first_block_is_still_profiled(tmp_path):
    rows = [f"{i},{i}" for i in range(300_000)] + ["oops,12 months"]
    (tmp_path / "d.csv").write_text("a,b\n" + "\n".join(rows) + "\n")
    summary = profile_dataset(str(tmp_path / "d.csv")).summary
    assert summary.rows == 300_001
    types = summary.column_stats["b"].types
    # Read again with pandas, which types each chunk: the chunk holding the text is text.
    assert types["string"] >= 1
    assert types["string"] + types["integral"] == 300_001


def test_explicit_format_must_be_known(tmp_path):
    _frame().to_csv(tmp_path / "d.txt", index=False)
    files = resolve(str(tmp_path / "d.txt"))
    assert detect_format(files, "csv") == "csv"
    with pytest.raises(
        DatasetError, match=r"file_format 'xlsx' is not supported; expected one of \['csv', 'parquet'\]"
    ):
        detect_format(files, "xlsx")
