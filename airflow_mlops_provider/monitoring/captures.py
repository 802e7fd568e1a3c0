"""Reading the predictions a model server captured.

The server writes hive-partitioned Parquet::

    <capture_uri>/model=<quote(model_name, safe='')>/version=<version>/date=<YYYY-MM-DD UTC>/part-<hex>.parquet

with the reserved columns named below, the model's input columns under their own names, and
``proba_<class>`` columns for models with ``predict_proba``. Files whose names start with ``.`` or
``_`` are still being written and are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_mlops_provider.exceptions import MonitoringError
from airflow_mlops_provider.monitoring._arrow import (
    IGNORED_PREFIXES,
    aware_datetime,
    filesystems,
    require_columns,
    utc_timestamps,
)
from airflow_mlops_provider.serving.capture import (
    META_COLUMNS,
    PARTITION_KEYS,
    PREDICTION_COLUMN,
    PROBA_PREFIX,
    SCHEMA_METADATA_KEY,
    SCORE_COLUMN,
    SERVED_COLUMN,
)

if TYPE_CHECKING:
    import pyarrow as pa

# The names the server writes; one definition, in the (standard-library-only) serving module.
REQUEST_ID, CAPTURED_AT, MODEL_NAME, MODEL_VERSION, MODEL_RUN_ID, DATA_FINGERPRINT = META_COLUMNS
PREDICTION = PREDICTION_COLUMN
#: Positive-class probability (last ``predict_proba`` column) for classifiers, the value for regressors.
SCORE = SCORE_COLUMN
#: Partition keys, in path order.
PARTITION_MODEL, PARTITION_VERSION, PARTITION_DATE = PARTITION_KEYS
#: Whether the prediction was the answer; ``False`` for a shadow score (null in files from before shadows).
SERVED = SERVED_COLUMN
RESERVED_COLUMNS = (*META_COLUMNS, PREDICTION, SCORE, SERVED)


def reserved_schema() -> pa.Schema:
    """The schema of the reserved capture columns; ``prediction``'s type is the model's, so null here."""
    import pyarrow as pa

    return pa.schema(
        [
            (REQUEST_ID, pa.string()),
            (CAPTURED_AT, pa.timestamp("us", "UTC")),
            (MODEL_NAME, pa.string()),
            (MODEL_VERSION, pa.string()),
            (MODEL_RUN_ID, pa.string()),
            (DATA_FINGERPRINT, pa.string()),
            (PREDICTION, pa.null()),
            (SCORE, pa.float64()),
            (SERVED, pa.bool_()),
        ]
    )


def model_directory(capture_uri: str, model_name: str, version: str | int | None = None) -> str:
    """The partition path of ``model_name`` (and ``version``) under ``capture_uri``."""
    path = f"{str(capture_uri).rstrip('/')}/{PARTITION_MODEL}={quote(model_name, safe='')}"
    if version is not None:
        path += f"/{PARTITION_VERSION}={quote(str(version), safe='')}"
    return path


def read_captures(
    capture_uri: str,
    model_name: str,
    *,
    version: str | int | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """Read the predictions captured for ``model_name`` with ``start <= captured_at < end``.

    Only the model's (and the version's) directory is listed, date partitions outside the window are
    pruned without being opened, and the exact window is pushed down to the Parquet row-group
    statistics. Files of different versions may differ in input columns: the result has the union
    (nulls where a file lacks a column).

    :param capture_uri: The capture root: a local path or an fsspec URI.
    :param model_name: The registered model's name (quoted in the path as the server quotes it).
    :param version: Only this model version; all versions when ``None``.
    :param start: Inclusive lower bound, a timezone-aware datetime or ISO 8601 text.
    :param end: Exclusive upper bound, likewise.
    :param columns: Read only these columns (projection); every column when ``None``.
    :return: The rows; an empty table with the schema when nothing matches or the model has no
        captures at all.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    stamp = pa.timestamp("us", "UTC")
    start_at = aware_datetime(start, "start")
    end_at = aware_datetime(end, "end")
    if start_at is not None and end_at is not None and start_at >= end_at:
        raise MonitoringError(f"empty window: start {start_at.isoformat()} >= end {end_at.isoformat()}")
    fs, arrow_fs, root = filesystems(capture_uri)
    base = model_directory(root, model_name, version)
    if not fs.isdir(base):
        return _empty(reserved_schema(), columns)
    where = f"captures of {model_name!r} under {capture_uri!r}"

    keys = [(PARTITION_DATE, pa.string())]
    if version is None:
        keys.insert(0, (PARTITION_VERSION, pa.string()))
    discovered = ds.dataset(
        base,
        filesystem=arrow_fs,
        format="parquet",
        partitioning=ds.partitioning(pa.schema(keys), flavor="hive"),
        ignore_prefixes=list(IGNORED_PREFIXES),
    )
    partition_names = [name for name, _ in keys]
    file_schema = pa.schema([f for f in discovered.schema if f.name not in partition_names])
    fragments = list(discovered.get_fragments(filter=_date_filter(start_at, end_at)))
    if not fragments:
        return _empty(file_schema, columns)
    try:
        schema = pa.unify_schemas([f.physical_schema for f in fragments], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise MonitoringError(f"{where}: columns disagree: {err}") from None
    require_columns(schema.names, [CAPTURED_AT], where)
    if columns is not None:
        require_columns(schema.names, columns, where)
    # The same fragment objects: their footers, read once for the schema, are not read again.
    dataset = ds.FileSystemDataset(fragments, schema, discovered.format, discovered.filesystem)
    table = dataset.to_table(
        columns=list(columns) if columns is not None else None, filter=_window_filter(start_at, end_at)
    )
    if CAPTURED_AT in table.column_names and table.schema.field(CAPTURED_AT).type != stamp:
        index = table.column_names.index(CAPTURED_AT)
        table = table.set_column(index, CAPTURED_AT, utc_timestamps(table[CAPTURED_AT], CAPTURED_AT, where))
    return table


def captured_request_ids(capture_uri: str, model_name: str) -> pa.ChunkedArray:
    """Every request id ever captured for ``model_name`` (all versions and dates, one column read).

    Pass it to :func:`~airflow_mlops_provider.monitoring.outcomes.join_outcomes` as ``all_request_ids``
    to tell labels of predictions outside the window from labels of requests never captured.
    """
    return read_captures(capture_uri, model_name, columns=[REQUEST_ID]).column(REQUEST_ID)


def input_columns(table: pa.Table) -> list[str]:
    """The model's input columns in a capture table as they were sent, in file order.

    From the capture's schema metadata (:data:`SCHEMA_METADATA_KEY`) where present, less the hashed
    columns (a digest is not the data the model saw; the dropped ones are absent anyway), else every
    column that is neither reserved nor a ``proba_<class>`` column.
    """
    import json

    note = (table.schema.metadata or {}).get(SCHEMA_METADATA_KEY)
    if note:
        try:
            meta = json.loads(note)
            named, hashed = meta.get("input_columns"), set(meta.get("hashed_columns") or [])
        except (ValueError, AttributeError, TypeError):
            named, hashed = None, set()
        if isinstance(named, list):
            wanted = {str(c) for c in named} - hashed
            return [c for c in table.column_names if c in wanted]
    return [c for c in table.column_names if c not in RESERVED_COLUMNS and not c.startswith(PROBA_PREFIX)]


def _date_filter(start: datetime | None, end: datetime | None) -> Any:
    import pyarrow.dataset as ds

    condition = None
    if start is not None:
        condition = ds.field(PARTITION_DATE) >= start.date().isoformat()
    if end is not None:
        # The server partitions each row by its own captured_at date (UTC).
        last = (end - timedelta(microseconds=1)).date()
        upper = ds.field(PARTITION_DATE) <= last.isoformat()
        condition = upper if condition is None else condition & upper
    return condition


def _window_filter(start: datetime | None, end: datetime | None) -> Any:
    import pyarrow as pa
    import pyarrow.dataset as ds

    stamp = pa.timestamp("us", "UTC")
    condition = None
    if start is not None:
        condition = ds.field(CAPTURED_AT) >= pa.scalar(start, type=stamp)
    if end is not None:
        upper = ds.field(CAPTURED_AT) < pa.scalar(end, type=stamp)
        condition = upper if condition is None else condition & upper
    return condition


def _empty(schema: pa.Schema, columns: Sequence[str] | None) -> pa.Table:
    import pyarrow as pa

    if columns is not None:
        schema = pa.schema(
            [schema.field(c) if c in schema.names else pa.field(c, pa.null()) for c in columns]
        )
    return schema.empty_table()
