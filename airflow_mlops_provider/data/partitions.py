"""Partitioned profiles: a dataset split into partitions, each profiled on its own, merged exactly.

whylogs profiles merge: counts, nulls, types, min and max add up exactly, KLL quantile sketches,
HyperLogLog cardinality and frequent items merge within their sketches' stated error. So a dataset
too big for one worker is profiled as a map over partitions (one task each, on any worker) and a
merge, and the merged profile is the same evidence as a single pass over the dataset: the same
summary, the same data fingerprint, the same URI contract for validation, drift and lineage.

- :func:`plan_partitions` splits the dataset: files smaller than the target size are packed
  together, a bigger CSV is cut into byte ranges on record boundaries (quote-aware, so a newline
  inside a quoted field never splits a row) and a bigger Parquet file into runs of row groups.
- :func:`profile_partition` profiles one partition and returns a :class:`PartitionProfile` that
  carries the partition's spec, so it can be checked against the plan when merged.
- :func:`merge_partitions` takes exactly one profile per partition, keyed by partition, refuses a
  missing, foreign or mismatched one by name, checks the files' schemas against each other as a
  single pass would, and merges.

A file's part of the data fingerprint is the SHA-256 of its bytes: the task that holds its first
rows digests it (a split CSV is digested by the plan, which reads it to find record boundaries).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.data.datasets import (
    DEFAULT_CHUNK_ROWS,
    DatasetError,
    DatasetFile,
    FileSchema,
    Format,
    check_schemas,
    detect_format,
    resolve,
)
from airflow_mlops_provider.lineage import combine_digests, file_digest

if TYPE_CHECKING:
    from airflow_mlops_provider.data.profiles import Profile, Tracked

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
_MAGIC = b"mlops-partition-profile/1\n"


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


@dataclass
class PartitionProfile:
    """One partition's profile, with what the merge checks it against.

    :param digests: File name to the SHA-256 of its bytes, for the files this partition digested.
    """

    plan_id: str
    partition: Partition
    tracked: Tracked
    digests: dict[str, str]

    def to_bytes(self) -> bytes:
        meta = {
            "plan_id": self.plan_id,
            "partition": self.partition.to_dict(),
            "rows": self.tracked.rows,
            "columns": self.tracked.columns,
            "timestamps": sorted(self.tracked.timestamps),
            "schemas": [s.to_dict() for s in self.tracked.schemas or ()],
            "digests": self.digests,
        }
        return _MAGIC + json.dumps(meta, default=str).encode() + b"\n" + self.tracked.view.serialize()

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "") -> PartitionProfile:
        from whylogs.core import DatasetProfileView

        from airflow_mlops_provider.data.profiles import Tracked

        if not data.startswith(_MAGIC):
            raise DatasetError(
                f"{where or 'data'} is not a partition profile (it does not start with {_MAGIC!r})"
            )
        head, _, body = data[len(_MAGIC) :].partition(b"\n")
        try:
            meta = json.loads(head)
            view = DatasetProfileView.deserialize(body)
        except Exception as err:
            raise DatasetError(
                f"{where or 'partition profile'} is damaged: {type(err).__name__}: {err}"
            ) from None
        tracked = Tracked(
            view,
            int(meta["rows"]),
            list(meta["columns"]),
            set(meta["timestamps"]),
            [FileSchema.from_dict(s) for s in meta["schemas"]],
        )
        return cls(meta["plan_id"], Partition.from_dict(meta["partition"]), tracked, dict(meta["digests"]))


def profile_partition(plan: PartitionPlan, key: str) -> PartitionProfile:
    """Profile the partition ``key`` of ``plan`` and digest the files it is to digest."""
    from airflow_mlops_provider.data.profiles import track

    partition = plan.partition(key)
    schemas: list[FileSchema] = []
    tracked = track(
        partition.files,
        plan.file_format,
        chunk_rows=plan.chunk_rows,
        timestamp_columns=plan.timestamp_columns,
        schemas=schemas,
    )
    by_name = {f.name: f.whole() for f in partition.files}
    digests = {name: file_digest(by_name[name].open) for name in partition.digests}
    return PartitionProfile(plan.plan_id, partition, tracked, digests)


def _file_schemas(slices: Iterable[Iterable[FileSchema]]) -> list[FileSchema]:
    """One schema per file from its slices' (in order): a column with text in any slice is text.

    A single pass types a file by its first chunk; a slice's first chunk is only its own. Text
    anywhere in the file wins, so the partitioned check is never laxer than the single pass.
    """
    files: dict[str, FileSchema] = {}
    for schema in (s for group in slices for s in group):
        seen = files.get(schema.name)
        if seen is None:
            files[schema.name] = schema
            continue
        kinds = dict(seen.kinds)
        for column, (kind, example) in schema.kinds.items():
            if column not in kinds or (kind == "text" and kinds[column][0] != "text"):
                kinds[column] = (kind, example)
        files[schema.name] = FileSchema(seen.uri, seen.name, seen.columns, kinds)
    return list(files.values())


def merge_partitions(plan: PartitionPlan, profiles: Mapping[str, PartitionProfile | None]) -> Profile:
    """Merge one profile per partition of ``plan`` into the dataset's profile.

    ``profiles`` maps each partition key to its profile (``None``, or no entry, for one that was not
    found). Refuses, naming the partition, one that is missing, belongs to another plan or holds
    other files; then checks every file's schema against the others, in dataset order, as
    profiling the dataset in one pass does.
    """
    from airflow_mlops_provider.data.profiles import Tracked, summarize

    extra = sorted(set(profiles) - set(plan.keys))
    if extra:
        raise DatasetError(
            f"profiles {extra} are not partitions of plan {plan.plan_id}; its partitions are {plan.keys}"
        )
    ordered = []
    for partition in plan.partitions:
        found = profiles.get(partition.key)
        if found is None:
            raise DatasetError(
                f"{partition.describe()} of plan {plan.plan_id} has no profile: its task has not succeeded; "
                f"nothing was merged"
            )
        if found.plan_id != plan.plan_id or found.partition != partition:
            raise DatasetError(
                f"the profile stored for {partition.describe()} was made for {found.partition.describe()} "
                f"of plan {found.plan_id}, not for plan {plan.plan_id}; nothing was merged"
            )
        ordered.append(found)
    check_schemas(_file_schemas(p.tracked.schemas or () for p in ordered))
    view = ordered[0].tracked.view
    for p in ordered[1:]:
        view = view.merge(p.tracked.view)
    digests = {**plan.digests}
    for p in ordered:
        digests.update(p.digests)
    missing = [name for _, name in plan.files if name not in digests]
    if missing:
        raise DatasetError(
            f"no digest of file(s) {missing[:5]} in the partition profiles of plan {plan.plan_id}"
        )
    columns = next((p.tracked.columns for p in ordered if p.tracked.columns), [])
    tracked = Tracked(
        view,
        sum(p.tracked.rows for p in ordered),
        columns,
        set().union(*(p.tracked.timestamps for p in ordered)),
    )
    return summarize(
        tracked,
        uri=plan.dataset_uri,
        data_fingerprint=combine_digests((fp, digests[name]) for fp, name in plan.files),
        files=len(plan.files),
        timestamp_columns=plan.timestamp_columns,
    )
