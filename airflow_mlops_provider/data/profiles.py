"""whylogs profiles of datasets, streamed in chunks, and the column statistics read from them.

A profile is whylogs' mergeable sketch of a dataset: counts, inferred types, a KLL quantile sketch,
a HyperLogLog cardinality estimate and frequent items per column. The data gates (contracts,
drift) work on profiles alone, so a profile of last month's training data is all the evidence a
later run needs.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.data.datasets import (
    DEFAULT_CHUNK_ROWS,
    DatasetError,
    DatasetFile,
    FileSchema,
    Format,
    detect_format,
    fingerprint,
    iter_chunks,
    resolve,
)

if TYPE_CHECKING:
    import pandas as pd
    from whylogs.core import DatasetProfileView

#: Distinct values up to which whylogs' frequent-items sketch lists every value exactly.
EXACT_CATEGORIES_LIMIT = 64
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_INT64_LIMIT = 2.0**63
PROFILE_FILE = "profile.bin"
SUMMARY_FILE = "summary.json"
# whylogs' anonymous usage statistics phone home unless this is set.
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")


@dataclass
class ColumnStats:
    """What a profile says about one column (all from whylogs' sketches).

    ``min``, ``max`` and the quantiles are order statistics and may be ``inf``/``-inf`` when the
    column holds infinities. ``mean`` and ``stddev`` are ``None`` when whylogs' running moments are
    not finite: one infinity (or values near 1e308, whose squares overflow) spoils them for the
    whole dataset.
    """

    name: str
    count: int
    null_count: int
    types: dict[str, int]
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    stddev: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)
    zero_fraction: float | None = None
    distinct_estimate: float | None = None
    categories: dict[str, int] | None = None
    is_timestamp: bool = False

    @property
    def null_fraction(self) -> float:
        return self.null_count / self.count if self.count else 0.0

    @property
    def non_null(self) -> int:
        return self.count - self.null_count

    @property
    def inferred_type(self) -> str:
        """The type of the column's values: ``timestamp``, or whylogs' dominant type (``null`` when none)."""
        if self.is_timestamp:
            return "timestamp"
        present = {t: n for t, n in self.types.items() if n}
        if not present:
            return "null"
        return max(present, key=lambda t: present[t])


@dataclass
class ProfileSummary:
    """The small JSON summary written beside a profile."""

    rows: int
    columns: list[str]
    data_fingerprint: str
    data_uri: str
    files: int
    timestamp_columns: list[str]
    column_stats: dict[str, ColumnStats]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> ProfileSummary:
        raw = json.loads(text)
        raw["column_stats"] = {k: ColumnStats(**v) for k, v in raw["column_stats"].items()}
        return cls(**raw)


@dataclass
class Profile:
    """A whylogs profile view with the summary that goes with it."""

    view: DatasetProfileView
    summary: ProfileSummary


def _schema() -> Any:
    """A whylogs schema with the sketches the gates read, and none they do not.

    whylogs' standard resolver also keeps a cardinality sketch of every float column, frequent
    items of every integer column and a distribution of every string column; the gates use none of
    those, and they cost about 15% of profiling time.
    """
    from whylogs.core.datatypes import Fractional, Integral, String
    from whylogs.core.metrics import StandardMetric
    from whylogs.core.resolvers import Resolver
    from whylogs.core.schema import DatasetSchema

    class GateResolver(Resolver):
        def resolve(self, name: str, why_type: Any, column_schema: Any) -> dict[str, Any]:
            metrics = [StandardMetric.counts, StandardMetric.types]
            if isinstance(why_type, Integral):
                metrics += [StandardMetric.distribution, StandardMetric.cardinality]
            elif isinstance(why_type, Fractional):
                metrics += [StandardMetric.distribution]
            elif isinstance(why_type, String):
                metrics += [StandardMetric.cardinality, StandardMetric.frequent_items]
            return {m.name: m.zero(column_schema.cfg) for m in metrics}

    return DatasetSchema(resolvers=GateResolver())


def _prepare(timestamp_columns: Sequence[str], found_timestamps: set[str]) -> Any:
    """Return a chunk transform that hands whylogs types it can sketch quickly and correctly.

    - timestamp columns (declared, or already datetimes) become epoch seconds, so their
      min/max/quantiles (freshness) are sketched; their names are added to ``found_timestamps``;
    - float columns whose values are all whole numbers become nullable ``Int64``: pandas reads an
      integer column with a null as float, which would otherwise be typed fractional;
    - object columns holding only strings become pandas ``string`` dtype (whylogs' fast path).
    """

    def transform(chunk: pd.DataFrame) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        for name in chunk.columns:
            column = chunk[name]
            if name in timestamp_columns or pd.api.types.is_datetime64_any_dtype(column.dtype):
                parsed = pd.to_datetime(column, errors="coerce", utc=True)
                bad = parsed.isna() & column.notna()
                if bad.any():
                    example = column[bad].iloc[0]
                    raise DatasetError(f"column {name!r} has a value that is not a timestamp: {example!r}")
                seconds = parsed.astype("datetime64[ns, UTC]").astype("int64") / 1e9
                chunk[name] = seconds.where(parsed.notna())
                found_timestamps.add(str(name))
            elif column.dtype.kind == "f":
                finite = column.to_numpy()[np.isfinite(column.to_numpy())]
                whole = len(finite) and not np.mod(finite[:1000], 1).any() and not np.mod(finite, 1).any()
                # Beyond int64's range (1e300 is a whole number too) a value stays a float.
                fits = whole and finite.min() >= -_INT64_LIMIT and finite.max() < _INT64_LIMIT
                if fits and len(finite) == column.notna().sum():
                    chunk[name] = column.astype("Int64")
            elif column.dtype == object and pd.api.types.infer_dtype(column, skipna=True) == "string":
                chunk[name] = column.astype("string")
        return chunk

    return transform


def profile_dataset(
    uri: str,
    *,
    file_format: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    timestamp_columns: Sequence[str] = (),
) -> Profile:
    """Profile the dataset at ``uri`` chunk by chunk and return the profile with its summary.

    Raises :class:`DatasetError` for a missing path, an empty or header-only dataset, an unreadable
    file or one not in the expected format, or a declared timestamp column that does not parse.
    """
    files = resolve(uri)
    fmt = detect_format(files, file_format)
    data_fingerprint = fingerprint(files)
    tracked = track(files, fmt, chunk_rows=chunk_rows, timestamp_columns=timestamp_columns)
    return summarize(
        tracked,
        uri=uri,
        data_fingerprint=data_fingerprint,
        files=len(files),
        timestamp_columns=timestamp_columns,
    )


@dataclass
class Tracked:
    """What profiling some of a dataset's files found (one partition's share, or all of it).

    :param timestamps: The columns that were timestamps (declared, or datetimes in the files).
    :param schemas: Each file's schema, when the caller checks them (see :func:`track`).
    """

    view: DatasetProfileView
    rows: int
    columns: list[str]
    timestamps: set[str]
    schemas: list[FileSchema] | None = None


def track(
    files: Sequence[DatasetFile],
    fmt: Format,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    timestamp_columns: Sequence[str] = (),
    schemas: list[FileSchema] | None = None,
) -> Tracked:
    """Profile ``files`` chunk by chunk into one whylogs profile.

    With ``schemas``, the files' schemas are collected there rather than checked against each
    other (the merge of a partitioned profile checks them across all partitions).
    """
    import numpy as np
    from whylogs.core import DatasetProfile

    from airflow_mlops_provider.data._whylogs_fast import fast_preprocessing

    profile = DatasetProfile(schema=_schema())
    rows = 0
    columns: list[str] = []
    found_timestamps: set[str] = set()
    transform = _prepare(timestamp_columns, found_timestamps)
    with fast_preprocessing():
        for chunk in iter_chunks(files, fmt, chunk_rows, transform=transform, schemas=schemas):
            if not columns:
                columns = [str(c) for c in chunk.columns]
            rows += len(chunk)
            # whylogs' running mean and variance overflow on values near 1e308 and turn NaN on
            # infinities; column_stats leaves such moments out, so numpy's warnings are noise.
            with np.errstate(over="ignore", invalid="ignore"):
                profile.track(pandas=chunk)
    return Tracked(profile.view(), rows, columns, found_timestamps, schemas)


def summarize(
    tracked: Tracked,
    *,
    uri: str,
    data_fingerprint: str,
    files: int,
    timestamp_columns: Sequence[str] = (),
) -> Profile:
    """Return the profile of a whole dataset from what tracking it found.

    Raises :class:`DatasetError` for a dataset without rows or without a declared timestamp column.
    """
    if tracked.rows == 0:
        raise DatasetError(f"dataset {uri!r} has a header but no rows")
    columns = tracked.columns
    missing_ts = sorted(set(timestamp_columns) - set(columns))
    if missing_ts:
        raise DatasetError(f"timestamp column(s) {missing_ts} not in dataset {uri!r}; columns are {columns}")
    timestamps = [c for c in columns if c in tracked.timestamps]
    stats = column_stats(tracked.view, timestamps)
    summary = ProfileSummary(
        rows=tracked.rows,
        columns=columns,
        data_fingerprint=data_fingerprint,
        data_uri=uri,
        files=files,
        timestamp_columns=timestamps,
        column_stats={name: stats[name] for name in columns},
    )
    return Profile(tracked.view, summary)


def column_stats(view: DatasetProfileView, timestamp_columns: Sequence[str] = ()) -> dict[str, ColumnStats]:
    """Read each column's statistics out of a whylogs profile view."""
    result = {}
    for name, column in view.get_columns().items():
        s = column.to_summary_dict()
        types = {
            t: int(s.get(f"types/{t}", 0)) for t in ("integral", "fractional", "boolean", "string", "object")
        }
        stats = ColumnStats(
            name=name,
            count=int(s.get("counts/n", 0)),
            null_count=int(s.get("counts/null", 0)),
            types=types,
            is_timestamp=name in timestamp_columns,
        )
        if s.get("distribution/n"):
            stats.min = float(s["distribution/min"])
            stats.max = float(s["distribution/max"])
            stats.mean = _finite(s["distribution/mean"])
            stats.stddev = _finite(s["distribution/stddev"])
            kll = column.get_metric("distribution").kll.value
            stats.quantiles = {
                str(q): float(v) for q, v in zip(QUANTILES, kll.get_quantiles(list(QUANTILES)), strict=True)
            }
            # Share of exact zeros among numeric values: where zero-filled nulls show up.
            stats.zero_fraction = float(kll.get_rank(0.0, True) - kll.get_rank(0.0, False))
        if "cardinality/est" in s:
            stats.distinct_estimate = float(s["cardinality/est"])
        items = s.get("frequent_items/frequent_strings")
        if items is not None and types["string"] and (stats.distinct_estimate or 0) <= EXACT_CATEGORIES_LIMIT:
            stats.categories = {str(item.value): int(item.est) for item in items}
        result[name] = stats
    return result


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def write_profile(profile: Profile, directory: str | Path) -> tuple[str, str]:
    """Write ``profile.bin`` and ``summary.json`` into a local ``directory``; return both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    profile_path = directory / PROFILE_FILE
    summary_path = directory / SUMMARY_FILE
    profile_path.write_bytes(profile.view.serialize())
    summary_path.write_text(profile.summary.to_json())
    return str(profile_path), str(summary_path)


def load_profile(profile_bytes: bytes, summary_text: str | None = None) -> Profile:
    """Rebuild a :class:`Profile` from its serialized view and (optionally) its summary."""
    from whylogs.core import DatasetProfileView

    try:
        view = DatasetProfileView.deserialize(profile_bytes)
    except Exception as err:
        raise DatasetError(f"not a whylogs profile: {type(err).__name__}: {err}") from None
    if summary_text is not None:
        summary = ProfileSummary.from_json(summary_text)
    else:
        stats = column_stats(view)
        any_stats = next(iter(stats.values()), None)
        summary = ProfileSummary(
            rows=any_stats.count if any_stats else 0,
            columns=list(stats),
            data_fingerprint="",
            data_uri="",
            files=0,
            timestamp_columns=[],
            column_stats=stats,
        )
    return Profile(view, summary)
