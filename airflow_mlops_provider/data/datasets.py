"""Datasets by URI: which files they are, what format, their fingerprint, and their rows in chunks.

A dataset is a CSV or Parquet file, a directory of partitions, or a glob. Local paths (and
``file://``) are read directly; any other scheme goes through fsspec, which is what Airflow's
``ObjectStoragePath`` stands on, so ``s3://``, ``gs://``, ``memory://``… work wherever the
filesystem's package is installed. Reading streams in chunks of ``chunk_rows`` rows, so memory
stays flat however large the dataset is.

The reader refuses, naming the file, what would otherwise be profiled quietly wrong: a Parquet file
under a CSV name or CSV text under a Parquet name, a CSV header with a name twice, a header that is
one column because the file is separated by ``;``, tab or ``|``, and a partition whose columns (or
a column that is numbers in one file and text in another) differ from the dataset's other files.
"""

from __future__ import annotations

import io
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from airflow_mlops_provider.lineage import data_files, dataset_root, fingerprint_streams, relative_name

if TYPE_CHECKING:
    import pandas as pd

Format = Literal["csv", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "parquet")
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".csv.bz2": "csv",
    ".csv.zst": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
DEFAULT_CHUNK_ROWS = 250_000
#: Bytes pyarrow parses at a time; with the read-ahead, a few of these are in memory at once.
BLOCK_BYTES = 4 << 20
#: Every Parquet file starts (and ends) with these bytes.
PARQUET_MAGIC = b"PAR1"
#: Separators that, in a header read as a single column, mean the file is not comma-separated.
_OTHER_SEPARATORS = (";", "\t", "|")


class DatasetError(ValueError):
    """A dataset is missing, empty, unreadable or not in the expected format."""


@dataclass(frozen=True)
class DatasetFile:
    """One file of a dataset, or a slice of one (a partition of a file too big for one task).

    :param uri: Where it is.
    :param name: Its name relative to the dataset's root (the partition path).
    :param byte_range: A CSV slice: ``(header_end, start, end)``, on record boundaries. The slice
        reads as the file's header (bytes ``[0, header_end)``) followed by bytes ``[start, end)``; the
        first slice of a file starts at 0 and so holds the header itself.
    :param row_groups: A Parquet slice: row groups ``[first, last)``.
    """

    uri: str
    name: str
    byte_range: tuple[int, int, int] | None = None
    row_groups: tuple[int, int] | None = None

    @property
    def is_local(self) -> bool:
        return _is_local(self.uri)

    @property
    def is_slice(self) -> bool:
        return self.byte_range is not None or self.row_groups is not None

    @property
    def starts_file(self) -> bool:
        """Whether this holds the file's first rows (its schema is the file's)."""
        if self.byte_range is not None:
            return self.byte_range[1] == 0
        return self.row_groups is None or self.row_groups[0] == 0

    def whole(self) -> DatasetFile:
        return DatasetFile(self.uri, self.name)

    def open(self) -> IO[bytes]:
        if self.byte_range is not None:
            header_end, start, end = self.byte_range
            pieces = [(0, end)] if start == 0 else [(0, header_end), (start, end)]
            return io.BufferedReader(_Pieces(self.whole().open(), pieces), buffer_size=BLOCK_BYTES)
        if self.is_local:
            return open(_local(self.uri), "rb")
        import fsspec

        return fsspec.open(self.uri, "rb").open()

    def size(self) -> int:
        """The file's size in bytes (a CSV slice's: its header and its range)."""
        if self.byte_range is not None:
            header_end, start, end = self.byte_range
            return end if start == 0 else header_end + end - start
        if self.is_local:
            return _local(self.uri).stat().st_size
        import fsspec

        fs, path = fsspec.core.url_to_fs(self.uri)
        return int(fs.size(path))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DatasetFile:
        ranges = {k: tuple(raw[k]) for k in ("byte_range", "row_groups") if raw.get(k) is not None}
        return cls(raw["uri"], raw["name"], **ranges)


class _Pieces(io.RawIOBase):
    """Byte ranges of one file, read as one stream (a CSV slice: its file's header, then its rows)."""

    def __init__(self, handle: IO[bytes], pieces: Sequence[tuple[int, int]]) -> None:
        self._handle = handle
        self._pieces = list(pieces)
        self._position = 0
        self._length = sum(end - start for start, end in self._pieces)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = max(0, min(self._length, base + offset))
        return self._position

    def readinto(self, buffer: Any) -> int:
        skipped = 0
        for start, end in self._pieces:
            if self._position < skipped + end - start:
                offset = start + self._position - skipped
                self._handle.seek(offset)
                data = self._handle.read(min(len(buffer), end - offset))
                buffer[: len(data)] = data
                self._position += len(data)
                return len(data)
            skipped += end - start
        return 0

    def close(self) -> None:
        self._handle.close()
        super().close()


def _is_local(uri: str) -> bool:
    scheme = urllib.parse.urlsplit(uri).scheme
    return scheme in ("", "file") or len(scheme) == 1  # a Windows drive letter is not a scheme


def _local(uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(uri).path))
    return Path(uri)


def resolve(uri: str) -> list[DatasetFile]:
    """Return the files of the dataset at ``uri``, sorted; raise :class:`DatasetError` when none."""
    uri = str(uri)
    if _is_local(uri):
        try:
            paths = data_files(uri)
        except FileNotFoundError as err:
            raise DatasetError(str(err)) from None
        root = dataset_root(uri)
        files = [DatasetFile(str(p), p.name if p == root else relative_name(p, root)) for p in paths]
    else:
        files = _resolve_remote(uri)
    if not files:
        raise DatasetError(f"no dataset files at {uri!r}")
    return files


def _resolve_remote(uri: str) -> list[DatasetFile]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if any(ch in path for ch in "*?["):
        found = sorted(fs.glob(path))
        root = path.split("*", 1)[0].rsplit("/", 1)[0]
    elif fs.isdir(path):
        found = sorted(fs.find(path))
        root = path
    elif fs.exists(path):
        found = [path]
        root = path.rsplit("/", 1)[0]
    else:
        raise DatasetError(f"no dataset at {uri!r}: no such file or directory")
    files = []
    for item in found:
        rel = item[len(root) :].lstrip("/") if item.startswith(root) else item.rsplit("/", 1)[-1]
        if fs.isfile(item) and not any(part.startswith((".", "_")) for part in rel.split("/")):
            files.append(DatasetFile(f"{protocol}://{item.lstrip('/')}", rel or item.rsplit("/", 1)[-1]))
    return files


def detect_format(files: Sequence[DatasetFile], file_format: str | None = None) -> Format:
    """Return the dataset's format: ``file_format`` when given, else from the file suffixes."""
    if file_format is not None:
        if file_format not in FORMATS:
            raise DatasetError(
                f"file_format {file_format!r} is not supported; expected one of {list(FORMATS)}"
            )
        return file_format
    found = set()
    for f in files:
        name = f.name.lower()
        fmt = next((fmt for suffix, fmt in _SUFFIXES.items() if name.endswith(suffix)), None)
        if fmt is None:
            raise DatasetError(
                f"cannot tell the format of {f.uri!r} from its name; expected a suffix in "
                f"{sorted(_SUFFIXES)} or an explicit file_format"
            )
        found.add(fmt)
    if len(found) > 1:
        raise DatasetError(f"dataset mixes formats {sorted(found)}; expected one")
    return found.pop()


def fingerprint(files: Sequence[DatasetFile]) -> str:
    """Return the content fingerprint, the same as :func:`airflow_mlops_provider.lineage.data_fingerprint`."""
    single = len(files) == 1
    return fingerprint_streams(("." if single else f.name, f.open) for f in files)


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


_ColumnKind = Literal["numeric", "text"]


@dataclass(frozen=True)
class FileSchema:
    """A file's columns, and which hold numbers and which text, read from its first chunk.

    :param kinds: Column name to ``(kind, example)``: the example is a value that is not a number,
        for text columns (it words the error when another file has numbers there).
    """

    uri: str
    name: str
    columns: list[str]
    kinds: dict[str, tuple[_ColumnKind, Any]]

    @classmethod
    def of(cls, f: DatasetFile, chunk: pd.DataFrame) -> FileSchema:
        kinds: dict[str, tuple[_ColumnKind, Any]] = {}
        for name in chunk.columns:
            kind = _column_kind(chunk[name])
            if kind is not None:
                kinds[str(name)] = (kind, _first_text(chunk[name]) if kind == "text" else None)
        return cls(f.uri, f.name, [str(c) for c in chunk.columns], kinds)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "kinds": {k: list(v) for k, v in self.kinds.items()}}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FileSchema:
        return cls(
            raw["uri"], raw["name"], list(raw["columns"]), {k: tuple(v) for k, v in raw["kinds"].items()}
        )


def check_schemas(schemas: Sequence[FileSchema]) -> None:
    """Refuse, naming the partition, a file whose columns or column types differ from those before it."""
    seen = _PartitionSchema()
    for schema in schemas:
        seen.check(schema)


@dataclass
class _PartitionSchema:
    """The columns, and which are numbers and which text, of the files read so far.

    A partition without a column would only lower that column's count in a profile (so null
    checks pass), and one with text in a number column would mix the column's types; both are
    refused. A column with only nulls in a file's first chunk has no type there, so it never
    conflicts.
    """

    columns: list[str] | None = None
    first_file: str = ""
    kinds: dict[str, tuple[_ColumnKind, str]] = field(default_factory=dict)

    def check(self, f: FileSchema) -> None:
        names = f.columns
        if self.columns is None:
            self.columns, self.first_file = names, f.name
        elif set(names) != set(self.columns):
            missing = [c for c in self.columns if c not in names]
            extra = [c for c in names if c not in self.columns]
            problems = []
            if missing:
                problems.append(f"lacks column(s) {missing} that partition {self.first_file!r} has")
            if extra:
                problems.append(f"has column(s) {extra} that partition {self.first_file!r} lacks")
            raise DatasetError(
                f"dataset file {f.uri!r} (partition {f.name!r}) {' and '.join(problems)}; every file of "
                f"a dataset must have the same columns"
            )
        for name, (kind, text) in f.kinds.items():
            seen = self.kinds.setdefault(name, (kind, f.name))
            if seen[0] != kind:
                example = f" (e.g. {text!r})" if kind == "text" else ""
                raise DatasetError(
                    f"dataset file {f.uri!r} (partition {f.name!r}): column {name!r} is {kind}"
                    f"{example}, but {seen[0]} in partition {seen[1]!r}; every file of a dataset must give "
                    f"a column the same type"
                )


def _column_kind(column: pd.Series) -> _ColumnKind | None:
    """``numeric`` or ``text`` for a column with values of that type; ``None`` for others and all-null."""
    import pandas as pd

    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return None
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric" if column.notna().any() else None
    if isinstance(dtype, pd.StringDtype):
        return "text" if column.notna().any() else None
    # pandas' own CSV reader (the re-read of a file) keeps text as Python objects.
    if pd.api.types.is_object_dtype(dtype):
        first = column.first_valid_index()
        return "text" if first is not None and isinstance(column[first], str) else None
    return None


def _first_text(column: pd.Series, look_at: int = 1000) -> Any:
    """The first of the column's first ``look_at`` values that is not a number (else its first)."""
    import pandas as pd

    values = column.iloc[:look_at].dropna()
    if values.empty:
        values = column.dropna().iloc[:look_at]
    text = values[pd.to_numeric(values, errors="coerce").isna()]
    value = text.iloc[0] if len(text) else values.iloc[0]
    return str(value)


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
