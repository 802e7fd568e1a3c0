"""Each file's columns and their kinds (numbers or text), and the refusal of a partition that differs from the others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops_provider.data.datasets.files import DatasetError, DatasetFile

if TYPE_CHECKING:
    import pandas as pd

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
