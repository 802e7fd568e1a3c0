"""Helpers shared by the monitoring readers: filesystems, column checks and UTC timestamps."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from airflow_mlops_provider.exceptions import MonitoringError

#: Names starting with these are in-progress or hidden files (Arrow's and Spark's convention).
IGNORED_PREFIXES = (".", "_")


def filesystems(uri: str) -> tuple[Any, Any, str]:
    """Return ``(fsspec filesystem, filesystem for pyarrow, path)`` for a local path or fsspec URI.

    Local files are read by Arrow's own filesystem (native reads, no GIL); anything else through the
    fsspec filesystem, which pyarrow wraps.
    """
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    fs, path = fsspec.core.url_to_fs(str(uri))
    path = path.rstrip("/") or "/"
    if isinstance(fs, LocalFileSystem):
        import pyarrow.fs as pafs

        return fs, pafs.LocalFileSystem(), path
    return fs, fs, path


def require_columns(available: Iterable[str], required: Iterable[str], where: str) -> None:
    """Raise :class:`MonitoringError` naming the ``required`` columns not in ``available``."""
    present = list(available)
    missing = [c for c in required if c not in present]
    if missing:
        raise MonitoringError(f"{where}: missing column(s) {missing}; columns there: {sorted(present)}")


def utc_timestamps(column: Any, name: str, where: str) -> Any:
    """Return ``column`` as ``timestamp[us, tz=UTC]``.

    Accepts timestamps (a naive one is read as UTC), dates (midnight UTC) and ISO 8601 strings (with a
    zone offset, or naive and then read as UTC).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    target = pa.timestamp("us", "UTC")
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        # A naive timestamp cast to a zoned type keeps its value: it is read as UTC. Unsafe only
        # to truncate nanoseconds.
        return pc.cast(column, target, safe=False)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise MonitoringError(
            f"{where}: column {name!r} is {kind}, expected timestamps or ISO 8601 strings "
            f"('2024-05-01T12:00:00Z')"
        )
    try:
        return pc.cast(column, target)
    except pa.ArrowInvalid as zoned_error:
        try:
            return pc.cast(pc.cast(column, pa.timestamp("us")), target)
        except pa.ArrowInvalid as naive_error:
            # All naive but one bad value: the naive attempt names it; otherwise the zoned one does.
            error = zoned_error if "expected no zone offset" in str(naive_error) else naive_error
            raise MonitoringError(
                f"{where}: column {name!r} has values that are not ISO 8601 timestamps "
                f"('2024-05-01T12:00:00Z'), or mixes values with and without a zone offset: {error}"
            ) from None


def aware_datetime(value: datetime | str | None, name: str) -> datetime | None:
    """Return ``value`` (a datetime or ISO 8601 text) in UTC; a naive one is refused."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise MonitoringError(f"{name}: {value!r} is not an ISO 8601 date and time") from None
    if not isinstance(value, datetime):
        raise MonitoringError(f"{name}: {value!r} is not a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise MonitoringError(f"{name}: {value.isoformat()} has no timezone; pass an aware datetime (UTC)")
    return value.astimezone(timezone.utc)
