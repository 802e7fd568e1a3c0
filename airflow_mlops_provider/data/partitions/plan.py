"""The partition plan: a dataset split into partitions, packed by size, cut on record boundaries or row groups."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops_provider.data.datasets import (
    DEFAULT_CHUNK_ROWS,
    DatasetError,
    DatasetFile,
    Format,
    detect_format,
    resolve,
)

DEFAULT_PARTITION_BYTES = 128 * 1024**2
#: Airflow's default ``[core] max_map_length``.
MAX_PARTITIONS = 1024
#: Bytes read at a time when scanning a CSV for record boundaries.
_SCAN_BYTES = 8 * 1024**2
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def parse_size(value: int | str) -> int:
    """Return a size in bytes from ``134217728``, ``"128MiB"`` or ``"200 MB"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise DatasetError(
                f"partition size {value!r} is not a size; expected bytes or a number with one of "
                f"{sorted(u for u in _UNITS if u)} (e.g. '128MiB')"
            )
        size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise DatasetError(f"partition size must be at least 1 byte, got {value!r}")
    return size


@dataclass(frozen=True)
class Partition:
    """One task's share of a dataset.

    :param key: Its name in the plan (``p00003``); the merge reads exactly one profile per key.
    :param files: The files or file slices it profiles, in dataset order.
    :param digests: Names of the files whose fingerprint digest it computes (those whose first rows it
        holds, unless the plan digested them already).
    """

    key: str
    files: tuple[DatasetFile, ...]
    digests: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = []
        for f in self.files:
            if f.byte_range is not None:
                parts.append(f"{f.name} bytes {f.byte_range[1]}..{f.byte_range[2]}")
            elif f.row_groups is not None:
                parts.append(f"{f.name} row groups {f.row_groups[0]}..{f.row_groups[1] - 1}")
            else:
                parts.append(f.name)
        shown = ", ".join(parts[:3]) + (f" and {len(parts) - 3} more" if len(parts) > 3 else "")
        return f"partition {self.key!r} ({shown})"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "files": [f.to_dict() for f in self.files], "digests": list(self.digests)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Partition:
        files = tuple(DatasetFile.from_dict(f) for f in raw["files"])
        return cls(raw["key"], files, tuple(raw.get("digests", ())))


@dataclass(frozen=True)
class PartitionPlan:
    """How a dataset is split, and the options every partition is profiled with.

    :param plan_id: Names this plan (its data, its split and ``run_key``): partition profiles of
        another plan, or of an earlier run, are never merged into this one.
    :param files: The dataset's files in order, each as ``(fingerprint name, file name)``.
    :param digests: File digests the plan computed itself (of the CSV files it split).
    """

    plan_id: str
    dataset_uri: str
    file_format: Format
    files: tuple[tuple[str, str], ...]
    partitions: tuple[Partition, ...]
    digests: Mapping[str, str] = field(default_factory=dict)
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    timestamp_columns: tuple[str, ...] = ()

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.partitions]

    def partition(self, key: str) -> Partition:
        for p in self.partitions:
            if p.key == key:
                return p
        raise DatasetError(f"plan {self.plan_id} has no partition {key!r}; its partitions are {self.keys}")

    def to_json(self) -> str:
        return json.dumps(
            {
                "plan_id": self.plan_id,
                "dataset_uri": self.dataset_uri,
                "file_format": self.file_format,
                "files": [list(f) for f in self.files],
                "partitions": [p.to_dict() for p in self.partitions],
                "digests": dict(self.digests),
                "chunk_rows": self.chunk_rows,
                "timestamp_columns": list(self.timestamp_columns),
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> PartitionPlan:
        raw = json.loads(text)
        return cls(
            plan_id=raw["plan_id"],
            dataset_uri=raw["dataset_uri"],
            file_format=raw["file_format"],
            files=tuple((fp, name) for fp, name in raw["files"]),
            partitions=tuple(Partition.from_dict(p) for p in raw["partitions"]),
            digests=dict(raw["digests"]),
            chunk_rows=int(raw["chunk_rows"]),
            timestamp_columns=tuple(raw["timestamp_columns"]),
        )


def plan_partitions(
    uri: str,
    *,
    partition_size: int | str = DEFAULT_PARTITION_BYTES,
    file_format: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    timestamp_columns: Sequence[str] = (),
    run_key: str = "",
    max_partitions: int = MAX_PARTITIONS,
) -> PartitionPlan:
    """Split the dataset at ``uri`` into partitions of about ``partition_size`` bytes each.

    Files up to the size are packed together in order; a bigger uncompressed CSV is cut into byte
    ranges on record boundaries, a bigger Parquet file into runs of whole row groups. A compressed
    CSV or a Parquet file with one row group cannot be cut and is one partition.

    :param run_key: Goes into the plan's id (an Airflow run id, say), so that each run's partition
        profiles are its own.
    :param max_partitions: Refuse a plan with more partitions than this (Airflow maps at most
        ``[core] max_map_length`` tasks, 1024 by default).
    """
    target = parse_size(partition_size)
    files = resolve(uri)
    fmt = detect_format(files, file_format)
    single = len(files) == 1
    partitions: list[Partition] = []
    digests: dict[str, str] = {}
    pack: list[DatasetFile] = []
    pack_bytes = 0

    def flush() -> None:
        nonlocal pack, pack_bytes
        if pack:
            _add(partitions, pack, digests)
        pack, pack_bytes = [], 0

    sizes = [f.size() for f in files]
    for f, size in zip(files, sizes, strict=True):
        slices = _split(f, fmt, size, target, digests) if size > target else None
        if slices:
            flush()
            for piece in slices:
                _add(partitions, [piece], digests)
            continue
        if pack and pack_bytes + size > target:
            flush()
        pack.append(f)
        pack_bytes += size
    flush()
    if len(partitions) > max_partitions:
        raise DatasetError(
            f"{len(partitions)} partitions of about {target:,} bytes for {uri!r}, more than the "
            f"{max_partitions} a run maps; choose a bigger partition_size"
        )
    names = tuple(("." if single else f.name, f.name) for f in files)
    identity = json.dumps(
        [uri, fmt, run_key, chunk_rows, list(timestamp_columns), [p.to_dict() for p in partitions], *sizes],
        sort_keys=True,
    )
    return PartitionPlan(
        plan_id=hashlib.sha256(identity.encode()).hexdigest()[:16],
        dataset_uri=uri,
        file_format=fmt,
        files=names,
        partitions=tuple(partitions),
        digests=digests,
        chunk_rows=chunk_rows,
        timestamp_columns=tuple(timestamp_columns),
    )


def _add(partitions: list[Partition], files: Sequence[DatasetFile], digested: Mapping[str, str]) -> None:
    to_digest = tuple(f.name for f in files if f.starts_file and f.name not in digested)
    partitions.append(Partition(f"p{len(partitions):05d}", tuple(files), to_digest))


def _split(
    f: DatasetFile, fmt: Format, size: int, target: int, digests: dict[str, str]
) -> list[DatasetFile] | None:
    """Cut ``f`` into slices of about ``target`` bytes, or ``None`` when it cannot be cut."""
    parts = math.ceil(size / target)
    if fmt == "parquet":
        return _split_parquet(f, target)
    if any(f.name.lower().endswith(s) for s in (".gz", ".bz2", ".zst")):
        return None
    header_end, cuts, digest = _csv_boundaries(f, [size * i // parts for i in range(1, parts)])
    digests[f.name] = digest
    if not cuts:
        return None
    bounds = [0, *cuts, size]
    return [
        DatasetFile(f.uri, f.name, byte_range=(header_end, start, end))
        for start, end in itertools.pairwise(bounds)
    ]


def _split_parquet(f: DatasetFile, target: int) -> list[DatasetFile] | None:
    import pyarrow.parquet as pq

    try:
        with f.open() as handle:
            metadata = pq.ParquetFile(handle).metadata
    except Exception:  # not readable as Parquet: its task reports why, naming the file
        return None
    groups = metadata.num_row_groups
    if groups < 2:
        return None
    slices, first, size = [], 0, 0
    for i in range(groups):
        group = metadata.row_group(i)
        size += sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        if size >= target or i == groups - 1:
            slices.append(DatasetFile(f.uri, f.name, row_groups=(first, i + 1)))
            first, size = i + 1, 0
    return slices if len(slices) > 1 else None


def _csv_boundaries(f: DatasetFile, targets: Sequence[int]) -> tuple[int, list[int], str]:
    """Read a CSV once: return where its header ends, the first record boundary at or after each
    target offset, and the file's digest.

    A record boundary is a newline outside quotes: one after an even number of ``"`` (RFC 4180's
    doubled quote inside a quoted field keeps the count even), so a quoted field holding a newline
    is never cut.
    """
    digest = hashlib.sha256()
    wanted = [0, *targets]  # offset 0 asks for the end of the header
    found: list[int] = []
    quotes = 0
    position = 0
    with f.open() as handle:
        while block := handle.read(_SCAN_BYTES):
            digest.update(block)
            end = position + len(block)
            while wanted and wanted[0] < end:
                boundary = _record_end(block, max(wanted[0] - position, 0), quotes)
                if boundary is None:
                    break  # the record goes on into the next block
                found.append(position + boundary)
                # Every wanted offset before this boundary is served by it.
                while wanted and wanted[0] < position + boundary:
                    wanted.pop(0)
            quotes += block.count(b'"')
            position = end
    if not found:
        return position, [], digest.hexdigest()
    header_end, cuts = found[0], found[1:]
    return header_end, sorted({c for c in cuts if header_end < c < position}), digest.hexdigest()


def _record_end(block: bytes, start: int, quotes_before: int, window: int = 1 << 16) -> int | None:
    """The offset just past the first newline outside quotes at or after ``start`` in ``block``.

    ``quotes_before`` counts the quotes before the block. Scans a window at a time: a record
    boundary is usually a line away.
    """
    import numpy as np

    quotes = quotes_before + block.count(b'"', 0, start)
    while start < len(block):
        piece = block[start : start + window]
        data = np.frombuffer(piece, dtype=np.uint8)
        newlines = np.flatnonzero(data == ord("\n"))
        # Quotes up to each newline (a newline is not a quote, so "up to" and "before" agree).
        inside = (quotes + np.cumsum(data == ord('"'))[newlines]) % 2
        outside = newlines[inside == 0]
        if len(outside):
            return start + int(outside[0]) + 1
        quotes += piece.count(b'"')
        start += window
    return None
