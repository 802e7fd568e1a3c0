"""A dataset's files: which they are (a file, a directory of partitions, a glob, local or fsspec), their format, their fingerprint."""

from __future__ import annotations

import io
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from airflow_mlops_provider.lineage import data_files, dataset_root, fingerprint_streams, relative_name

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
#: Bytes pyarrow parses at a time; with the read-ahead, a few of these are in memory at once.
BLOCK_BYTES = 4 << 20
#: Every Parquet file starts (and ends) with these bytes.
PARQUET_MAGIC = b"PAR1"


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
