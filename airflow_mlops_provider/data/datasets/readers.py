"""A dataset's rows, in chunks: pyarrow's CSV and Parquet readers, pandas where pyarrow's typing stops, and the refusals of a file in another format."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from airflow_mlops_provider.data.datasets.files import (
    _SUFFIXES,
    BLOCK_BYTES,
    PARQUET_MAGIC,
    DatasetError,
    DatasetFile,
    Format,
    _local,
    detect_format,
    resolve,
)
from airflow_mlops_provider.data.datasets.schemas import FileSchema, _PartitionSchema

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_CHUNK_ROWS = 250_000
#: Separators that, in a header read as a single column, mean the file is not comma-separated.
_OTHER_SEPARATORS = (";", "\t", "|")


def iter_chunks(
    files: Sequence[DatasetFile],
    file_format: Format,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    transform: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    schemas: list[FileSchema] | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the dataset's rows as DataFrames of at most ``chunk_rows`` rows, file after file.

    Raises :class:`DatasetError` naming the file for an empty file, a file that is not in the
    format, or one that cannot be read, and naming the partition when a file's columns or column
    types differ from the files before it (checked on each file's first chunk, so at no extra read).
    A file with a header and no rows yields nothing.

    With ``schemas``, each file's schema is appended to it instead of checked: the caller checks
    them with :func:`check_schemas` (a partitioned profile's merge, across all partitions).
    """
    reader = _csv_chunks if file_format == "csv" else _parquet_chunks
    checked = schemas is None and len(files) > 1
    seen = _PartitionSchema()
    for f in files:
        try:
            if f.size() == 0:
                raise DatasetError(f"dataset file {f.uri!r} is empty (0 bytes)")
            first = True
            for chunk in reader(f, chunk_rows):
                if first and (checked or schemas is not None):
                    schema = FileSchema.of(f, chunk)
                    if schemas is not None:
                        schemas.append(schema)
                    else:
                        seen.check(schema)
                first = False
                yield transform(chunk) if transform else chunk
        except DatasetError:
            raise
        except (OSError, UnicodeDecodeError) as err:
            raise DatasetError(f"cannot read dataset file {f.uri!r}: {type(err).__name__}: {err}") from None
        except Exception as err:
            detail = str(err) if len(str(err)) <= 200 else f"{str(err)[:200]}…"
            raise DatasetError(
                f"dataset file {f.uri!r} is not valid {file_format.upper()}: {type(err).__name__}: {detail!r}"
            ) from None


def _refuse_duplicate_names(f: DatasetFile, names: Sequence[str]) -> None:
    duplicated = sorted(name for name, n in Counter(names).items() if n > 1)
    if duplicated:
        raise DatasetError(
            f"dataset file {f.uri!r} has duplicate column name(s) {duplicated}; expected each name once"
        )


def _refuse_other_separator(f: DatasetFile, names: Sequence[str]) -> None:
    """Refuse a CSV header read as a single column that holds ``;``, a tab or ``|`` (and no binary)."""
    if len(names) == 1 and not any(ch < " " and ch != "\t" for ch in names[0]):
        separator = max(_OTHER_SEPARATORS, key=names[0].count)
        if separator in names[0]:
            raise DatasetError(
                f"dataset file {f.uri!r} looks like {separator!r}-separated: its header {names[0]!r} "
                f"reads as a single column; expected comma-separated values"
            )


def _format_suffix(name: str) -> str | None:
    return next((suffix for suffix in _SUFFIXES if name.lower().endswith(suffix)), None)


def _refuse_parquet_as_csv(f: DatasetFile, head: bytes) -> None:
    if head[: len(PARQUET_MAGIC)] != PARQUET_MAGIC:
        return
    suffix = _format_suffix(f.name)
    named = f"has a {suffix} name" if suffix else "is read as CSV"
    raise DatasetError(
        f"dataset file {f.uri!r} {named} but is a Parquet file (it starts with PAR1); "
        f"{'rename it or ' if suffix else ''}pass file_format='parquet'"
    )


def _refuse_text_as_parquet(f: DatasetFile, head: bytes) -> None:
    """Refuse a file pyarrow could not open as Parquet that starts like text (CSV under a Parquet name).

    Other binary goes on to pyarrow's own error.
    """
    if head[: len(PARQUET_MAGIC)] == PARQUET_MAGIC or any(b < 0x20 and b not in b"\t\r\n" for b in head):
        return
    suffix = _format_suffix(f.name)
    named = f"has a {suffix} name" if suffix else "is read as Parquet"
    raise DatasetError(
        f"dataset file {f.uri!r} {named} but looks like CSV text (it starts with {head[:16]!r}, "
        f"not PAR1); {'rename it or ' if suffix else ''}pass file_format='csv'"
    )


class _TypeChangedMidFile(Exception):
    """pyarrow fixed a column's type from the file's first block and a later block disagrees."""

    def __init__(self, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


def _to_pandas(table: Any) -> pd.DataFrame:
    """Arrow to pandas with nullable integers and pandas strings: whylogs' fast paths, no float ints."""
    import pandas as pd
    import pyarrow as pa

    mapping = {t: pd.Int64Dtype() for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64())}
    # Arrow-backed strings: null checks read the validity bitmap instead of testing each value.
    mapping.update({pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")})
    return table.to_pandas(types_mapper=mapping.get)


def _csv_chunks(f: DatasetFile, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Stream a CSV with pyarrow, whose reader parses ahead on another core while we profile.

    pyarrow infers each column's type from the first block; when a later block disagrees (a number
    column that turns into text), the file is read again with pandas, which types per chunk, from
    the first row pyarrow has not yielded.
    """
    yielded = 0
    try:
        for chunk in _arrow_csv_chunks(f, chunk_rows):
            yielded += len(chunk)
            yield chunk
    except _TypeChangedMidFile as changed:
        for chunk in _pandas_csv_chunks(f, chunk_rows, changed.names):
            if yielded >= len(chunk):
                yielded -= len(chunk)
                continue
            yield chunk.iloc[yielded:] if yielded else chunk
            yielded = 0


def _arrow_csv_chunks(f: DatasetFile, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions(strings_can_be_null=True)
    codec = _compression(f.name)
    with _arrow_file(f) as raw:
        _refuse_parquet_as_csv(f, raw.read(len(PARQUET_MAGIC)))
        raw.seek(0)
        source = pa.CompressedInputStream(raw, codec) if codec else raw
        try:
            reader = pacsv.open_csv(
                source, read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES), convert_options=convert
            )
        except pa.ArrowInvalid as err:
            if "Empty CSV file" in str(err):
                raise DatasetError(f"dataset file {f.uri!r} has no header and no rows") from None
            if "Expected 1 columns" in str(err):  # a one-column header over wider rows: "a;b" / "1,5;2"
                _refuse_other_separator(f, [_header_line(f)])
            raise
        _refuse_duplicate_names(f, reader.schema.names)
        _refuse_other_separator(f, reader.schema.names)
        pending: list[Any] = []
        rows = 0
        first = True
        for batch in _prefetched(reader):
            if isinstance(batch, pa.ArrowInvalid):
                if "conversion error" in str(batch).lower() and not first:
                    raise _TypeChangedMidFile(str(batch), reader.schema.names)
                raise batch
            first = False
            pending.append(batch)
            rows += batch.num_rows
            if rows >= chunk_rows:
                table = pa.Table.from_batches(pending)
                while table.num_rows >= chunk_rows:  # zero-copy slices of exactly chunk_rows rows
                    yield _to_pandas(table.slice(0, chunk_rows))
                    table = table.slice(chunk_rows)
                pending, rows = table.to_batches(), table.num_rows
        if rows:
            yield _to_pandas(pa.Table.from_batches(pending))


def _arrow_file(f: DatasetFile) -> Any:
    """The file as an Arrow input: local files are read by Arrow itself (no GIL), others through fsspec."""
    import pyarrow as pa

    if f.is_local and f.byte_range is None:
        return pa.OSFile(str(_local(f.uri)))
    return pa.PythonFile(f.open(), mode="r")


def _header_line(f: DatasetFile) -> str:
    """The CSV's first line, decompressed (only read to word an error)."""
    import pyarrow as pa

    codec = _compression(f.name)
    with _arrow_file(f) as raw:
        head = (pa.CompressedInputStream(raw, codec) if codec else raw).read(1 << 16)
    return head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace").removeprefix("\ufeff")


def _prefetched(reader: Any, depth: int = 2) -> Iterator[Any]:
    """Yield the reader's batches, parsing the next ones in a thread while the caller works.

    pyarrow parses without the GIL, so on a second core parsing overlaps the profiling of the
    previous batch. An ``ArrowInvalid`` from the reader is yielded in the batch's place.
    """
    import queue
    import threading

    import pyarrow as pa

    done = object()
    batches: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            while not stop.is_set():
                try:
                    batches.put(reader.read_next_batch())
                except StopIteration:
                    break
        except pa.ArrowInvalid as err:
            batches.put(err)
        except Exception as err:  # surfaced to the consumer, never lost in the thread
            batches.put(err)
        batches.put(done)

    thread = threading.Thread(target=produce, name="csv-prefetch", daemon=True)
    thread.start()
    try:
        while (item := batches.get()) is not done:
            if isinstance(item, Exception) and not isinstance(item, pa.ArrowInvalid):
                raise item
            yield item
            if isinstance(item, pa.ArrowInvalid):
                return
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                batches.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def _pandas_csv_chunks(f: DatasetFile, chunk_rows: int, names: list[str]) -> Iterator[pd.DataFrame]:
    """Read the CSV again with pandas, under pyarrow's column names (pandas calls an empty one
    ``Unnamed: 0``), so that the file's columns match the other partitions'."""
    import pandas as pd

    whole_local = f.is_local and f.byte_range is None
    compression = "infer" if whole_local else _compression(f.name)
    source: str | IO[bytes] = f.uri if whole_local else f.open()
    try:
        with pd.read_csv(
            source, chunksize=chunk_rows, compression=compression, low_memory=False, header=0, names=names
        ) as chunks:
            yield from chunks
    except pd.errors.EmptyDataError:
        raise DatasetError(f"dataset file {f.uri!r} has no header and no rows") from None
    finally:
        if isinstance(source, io.IOBase):
            source.close()


def _compression(name: str) -> str | None:
    for suffix, codec in ((".gz", "gzip"), (".bz2", "bz2"), (".zst", "zstd")):
        if name.endswith(suffix):
            return codec
    return None


def _parquet_chunks(f: DatasetFile, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with f.open() as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except pa.ArrowInvalid:
            handle.seek(0)
            _refuse_text_as_parquet(f, handle.read(64))
            raise
        _refuse_duplicate_names(f, parquet.schema_arrow.names)
        groups = range(*f.row_groups) if f.row_groups is not None else None
        for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=groups):
            yield _to_pandas(pa.Table.from_batches([batch]))


def read_dataframe(uri: str, file_format: str | None = None, *, numpy_dtypes: bool = False) -> pd.DataFrame:
    """Read the whole dataset at ``uri`` into one DataFrame (for training- and evaluation-sized data).

    The one reader of datasets: the same files, formats and refusals as profiling.

    :param numpy_dtypes: Give the columns the dtypes ``pandas.read_csv`` gives, which scikit-learn
        takes (see :func:`as_numpy_dtypes`), instead of pandas' nullable ones.
    """
    import pandas as pd

    files = resolve(uri)
    chunks = list(iter_chunks(files, detect_format(files, file_format)))
    if not chunks:
        raise DatasetError(f"dataset {uri!r} has a header but no rows")
    frame = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
    return as_numpy_dtypes(frame) if numpy_dtypes else frame


def as_numpy_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with NumPy dtypes: nullable integers as ``int64`` (``float64`` with NaN when
    a value is missing), booleans likewise, strings as objects with NaN for missing.

    scikit-learn reads missing values as NaN only (``pd.NA`` fails its checks), and a served model
    is sent NaN for a ``null``: so models train and are evaluated on what they will be served.
    """
    import numpy as np
    import pandas as pd

    columns = {}
    for name in frame.columns:
        column = frame[name]
        dtype = column.dtype
        if isinstance(dtype, pd.StringDtype) or pd.api.types.is_object_dtype(dtype):
            values = column.to_numpy(dtype=object, copy=True)
            values[pd.isna(values)] = np.nan
            columns[name] = pd.Series(values, index=frame.index, dtype=object)
        elif isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iub":
            missing = column.isna().any()
            target = float if missing else (bool if dtype.kind == "b" else "int64")
            columns[name] = column.to_numpy(dtype=target, na_value=np.nan if missing else None)
        else:
            columns[name] = column
    return pd.DataFrame(columns, index=frame.index)
