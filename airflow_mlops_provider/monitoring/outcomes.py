"""Delayed outcomes: reading label files and joining them to the captured predictions.

A label file has a ``request_id``, the outcome, the time it was known and, optionally, a business
value. Labels arrive late, sometimes twice, sometimes for requests this model never served; the join
counts each case, so that a report says how much of the window its metrics stand on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.exceptions import MonitoringError
from airflow_mlops_provider.monitoring._arrow import (
    IGNORED_PREFIXES,
    filesystems,
    require_columns,
    utc_timestamps,
)
from airflow_mlops_provider.monitoring.captures import CAPTURED_AT, REQUEST_ID

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

#: The names :func:`read_labels` gives the outcome, its time and the business value, whatever they
#: were called in the file.
LABEL = "label"
LABELED_AT = "labeled_at"
VALUE = "value"

_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".parq": "parquet", ".csv": "csv"}


def read_labels(
    labels_uri: str,
    *,
    label_column: str = "label",
    timestamp_column: str = "labeled_at",
    value_column: str | None = None,
) -> pa.Table:
    """Read outcome labels from a Parquet or CSV file, a directory of them, or a glob.

    A directory is searched recursively (hive-style ``key=value`` folders are fine; the keys are not
    read as columns), skipping names that start with ``.`` or ``_``.

    :param labels_uri: A local path or fsspec URI.
    :param label_column: The outcome's column; renamed ``label``.
    :param timestamp_column: When the outcome was known; renamed ``labeled_at``, as
        ``timestamp[us, tz=UTC]`` (naive values are read as UTC).
    :param value_column: A business-value column (``revenue_kept``); renamed ``value``, as float64.
    :return: Columns ``request_id`` (string), ``label``, ``labeled_at`` and, with a value column,
        ``value``; one row per label row read (duplicates and nulls are left to :func:`join_outcomes`).
    :raises MonitoringError: The path does not exist or holds no label files, a required column is
        missing, or timestamps do not parse.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds

    required = [REQUEST_ID, label_column, timestamp_column]
    if value_column is not None:
        required.append(value_column)
    if len(set(required)) != len(required):
        raise MonitoringError(
            f"labels: the request id, label, timestamp and value columns must differ, got {required}"
        )
    files, arrow_fs = _label_files(labels_uri)
    kinds = {_format(f, labels_uri) for f in files}
    if len(kinds) > 1:
        raise MonitoringError(f"labels at {labels_uri!r} mix Parquet and CSV files; use one format")
    file_format: Any = kinds.pop()
    if file_format == "csv":
        types = {REQUEST_ID: pa.string(), timestamp_column: pa.string()}
        if value_column is not None:
            types[value_column] = pa.float64()
        file_format = ds.CsvFileFormat(
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
        )
    where = f"labels at {labels_uri!r}"
    try:
        dataset = ds.dataset(files, filesystem=arrow_fs, format=file_format)
        require_columns(dataset.schema.names, required, where)
        table = dataset.to_table(columns=required)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as err:
        raise MonitoringError(f"{where}: cannot be read: {err}") from None

    request_ids = table.column(REQUEST_ID)
    if not pa.types.is_string(request_ids.type):
        request_ids = pc.cast(request_ids, pa.string())
    out = {
        REQUEST_ID: request_ids,
        LABEL: _decoded(table.column(label_column)),
        LABELED_AT: utc_timestamps(table.column(timestamp_column), timestamp_column, where),
    }
    if value_column is not None:
        try:
            out[VALUE] = pc.cast(table.column(value_column), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise MonitoringError(f"{where}: value column {value_column!r} is not numeric: {err}") from None
    return pa.table(out)


def join_outcomes(
    captures: pa.Table,
    labels: pa.Table,
    *,
    all_request_ids: Any = None,
    max_label_delay: timedelta | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """Join labels to the predictions captured in a window, and count what did not join.

    Every label row read ends in exactly one count: ``incomplete`` (null request id, label or time),
    ``duplicates`` (rows beyond the first per request id; the latest ``labeled_at`` wins, ties go to the
    row read first), ``unknown`` (no capture of the model has the request id), ``outside_window``
    (captured, but not in this window), ``before_prediction`` (labelled before the prediction was
    made, which cannot be real; excluded) or ``joined``. ``late`` counts joined labels that came more
    than ``max_label_delay`` after the prediction; they are still used.

    One hash join, of the request ids alone: the capture and label columns are taken once, for the
    rows that join, whatever their types, and duplicates are resolved by integer sorts of the joined
    row numbers, only when there are any; the ids themselves are never sorted.

    :param captures: Captured predictions of the window (:func:`~.captures.read_captures`), with at
        least ``request_id`` and ``captured_at``.
    :param labels: Labels as :func:`read_labels` returns them.
    :param all_request_ids: Every request id captured for the model (an array, chunked array, or a
        table with ``request_id``; see :func:`~.captures.captured_request_ids`). When ``None``, only
        the window's ids are known and every unmatched label counts as ``unknown``.
    :param max_label_delay: Labels later than this after their prediction count as ``late``.
    :return: The joined rows (captures' columns, then ``label``, ``labeled_at`` and ``value``), sorted
        by ``captured_at`` (then capture order), and the counts: ``labels``, ``incomplete``,
        ``duplicates``, ``unknown``, ``outside_window``, ``before_prediction``, ``joined``, ``late``,
        ``predictions`` (rows in the window), ``duplicate_predictions`` (labelled capture rows that
        repeat a request id; the label joins the earliest) and ``coverage`` (joined / predictions,
        ``None`` without predictions).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    require_columns(captures.column_names, [REQUEST_ID, CAPTURED_AT], "captures")
    require_columns(labels.column_names, [REQUEST_ID, LABEL, LABELED_AT], "labels")
    clashing = sorted(set(labels.column_names) & set(captures.column_names) - {REQUEST_ID})
    if clashing:
        raise MonitoringError(
            f"captures and labels both have column(s) {clashing}; rename them on one side before joining"
        )
    if max_label_delay is not None and max_label_delay < timedelta(0):
        raise MonitoringError(f"max_label_delay: {max_label_delay} is negative, expected >= 0")

    captures = _with_column(
        captures, CAPTURED_AT, utc_timestamps(captures[CAPTURED_AT], CAPTURED_AT, "captures")
    )
    captures = _with_column(captures, REQUEST_ID, pc.cast(captures[REQUEST_ID], pa.string()))
    complete = labels.filter(
        pc.and_(
            pc.and_(pc.is_valid(labels[REQUEST_ID]), pc.is_valid(labels[LABEL])),
            pc.is_valid(labels[LABELED_AT]),
        )
    )
    complete = _with_column(complete, LABELED_AT, utc_timestamps(complete[LABELED_AT], LABELED_AT, "labels"))
    complete = _with_column(complete, REQUEST_ID, pc.cast(complete[REQUEST_ID], pa.string()))

    pairs = _pairs(captures[REQUEST_ID], complete[REQUEST_ID])
    capture_row, label_row = pairs["capture_row"].to_numpy(), pairs["label_row"].to_numpy()
    captured_at = _micros(captures[CAPTURED_AT])[capture_row]
    labeled_at = _micros(complete[LABELED_AT])[label_row]
    matched = np.zeros(complete.num_rows, dtype=bool)
    matched[label_row] = True
    # The latest label of each capture row, then the earliest capture row of each label; each pass
    # only when some row appears twice (np.lexsort: the last key is the primary one).
    keep = _first_of_each(capture_row, (label_row, -labeled_at, capture_row))
    capture_row, label_row, captured_at, labeled_at = (
        a[keep] for a in (capture_row, label_row, captured_at, labeled_at)
    )
    pairs_per_label = len(label_row)
    keep = _first_of_each(label_row, (capture_row, captured_at, label_row))
    capture_row, label_row, captured_at, labeled_at = (
        a[keep] for a in (capture_row, label_row, captured_at, labeled_at)
    )
    duplicate_predictions = pairs_per_label - len(label_row)

    # Which of an unmatched id's labels is the latest changes no count: its distinct ids suffice.
    unmatched = pc.unique(complete[REQUEST_ID].filter(pa.array(~matched)))
    duplicates = int(matched.sum()) - len(label_row) + int((~matched).sum()) - len(unmatched)
    outside_window = 0
    if all_request_ids is not None and len(unmatched):
        known = pc.is_in(unmatched, value_set=_id_array(all_request_ids))
        outside_window = int(pc.sum(known).as_py() or 0)

    before = labeled_at < captured_at
    keep = ~before
    capture_row, label_row, captured_at, labeled_at = (
        a[keep] for a in (capture_row, label_row, captured_at, labeled_at)
    )
    late = 0
    if max_label_delay is not None:
        late = int((labeled_at - captured_at > max_label_delay // timedelta(microseconds=1)).sum())
    # The hash join's pair order depends on threads; the bootstrap's resamples depend on row order.
    order = np.lexsort((capture_row, captured_at))
    joined = captures.take(pa.array(capture_row[order]))
    rows = pa.array(label_row[order])
    for name in complete.column_names:
        if name != REQUEST_ID:
            joined = joined.append_column(complete.schema.field(name), complete[name].take(rows))

    predictions = captures.num_rows
    counts: dict[str, Any] = {
        "labels": labels.num_rows,
        "incomplete": labels.num_rows - complete.num_rows,
        "duplicates": duplicates,
        "unknown": len(unmatched) - outside_window,
        "outside_window": outside_window,
        "before_prediction": int(before.sum()),
        "joined": joined.num_rows,
        "late": late,
        "predictions": predictions,
        "duplicate_predictions": duplicate_predictions,
        "coverage": joined.num_rows / predictions if predictions else None,
    }
    return joined, counts


def empty_labels(*, value_column: str | None = None) -> pa.Table:
    """A label table with no rows, as :func:`read_labels` would return it (before outcomes arrive)."""
    import pyarrow as pa

    fields = [(REQUEST_ID, pa.string()), (LABEL, pa.int64()), (LABELED_AT, pa.timestamp("us", "UTC"))]
    if value_column is not None:
        fields.append((VALUE, pa.float64()))
    return pa.schema(fields).empty_table()


def _pairs(capture_ids: Any, label_ids: Any) -> pa.Table:
    """``capture_row`` and ``label_row`` of every capture and label with the same request id."""
    import numpy as np
    import pyarrow as pa

    left = pa.table({REQUEST_ID: capture_ids, "capture_row": np.arange(len(capture_ids))})
    right = pa.table({REQUEST_ID: label_ids, "label_row": np.arange(len(label_ids))})
    return left.join(right, keys=REQUEST_ID, join_type="inner")


def _first_of_each(group: np.ndarray, keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """Indices keeping, for each value of ``group``, the row first in ``np.lexsort(keys)`` order."""
    import numpy as np

    if not len(group) or np.bincount(group).max() <= 1:  # row numbers: small non-negative ints
        return np.arange(len(group))
    order = np.lexsort(keys)
    ordered = group[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return np.sort(order[first])


def _micros(column: Any) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)


def _label_files(labels_uri: str) -> tuple[list[str], Any]:
    fs, arrow_fs, path = filesystems(labels_uri)
    if any(ch in path for ch in "*?["):
        files = sorted(p for p in fs.glob(path) if fs.isfile(p))
        if not files:
            raise MonitoringError(f"labels: no files match {labels_uri!r}")
    elif fs.isdir(path):
        files = sorted(
            p
            for p in fs.find(path)
            if not any(part.startswith(IGNORED_PREFIXES) for part in p[len(path) :].split("/") if part)
        )
        if not files:
            raise MonitoringError(f"labels: no label files under {labels_uri!r}")
    elif fs.exists(path):
        files = [path]
    else:
        raise MonitoringError(f"labels: {labels_uri!r} does not exist")
    return files, arrow_fs


def _format(path: str, labels_uri: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    for suffix, kind in _FORMATS.items():
        if name.endswith(suffix):
            return kind
    raise MonitoringError(
        f"labels at {labels_uri!r}: {name!r} is not a label file; expected names ending in {sorted(_FORMATS)}"
    )


def _decoded(column: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _with_column(table: pa.Table, name: str, column: Any) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, column)


def _id_array(ids: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(ids, pa.Table):
        require_columns(ids.column_names, [REQUEST_ID], "all_request_ids")
        ids = ids[REQUEST_ID]
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    elif not isinstance(ids, pa.Array):
        ids = pa.array(list(ids))
    return pc.cast(ids, pa.string())
