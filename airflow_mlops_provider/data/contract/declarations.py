"""A data contract as declared: the table's rules and each column's, from Python, YAML or a mapping."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args

Severity = Literal["fail", "warn"]
DType = Literal["integral", "fractional", "numeric", "string", "boolean", "timestamp"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
DTYPES: tuple[str, ...] = get_args(DType)
#: whylogs estimates distinct counts with HyperLogLog (about 1.6% error): "unique" means "probably unique".
UNIQUE_TOLERANCE = 0.03
CHECKS = (
    "required",
    "dtype",
    "max_null_fraction",
    "max_zero_fraction",
    "min_value",
    "max_value",
    "finite",
    "allowed_values",
    "unique",
    "max_age",
    "quantiles",
)


class ContractError(ValueError):
    """A contract is malformed (unknown key, bad value)."""


def _choice(value: Any, allowed: tuple[str, ...], what: str) -> Any:
    if value not in allowed:
        raise ContractError(f"{what} is {value!r}; expected one of {list(allowed)}")
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: str | int | float | timedelta, what: str = "duration") -> timedelta:
    """Parse ``90s``, ``15m``, ``6h``, ``7d``, ``2w`` (or seconds as a number) into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ContractError(f"{what} is {value!r}; expected a number and a unit s/m/h/d/w, e.g. '7d'")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


@dataclass(frozen=True)
class ColumnRule:
    """What one column must satisfy. Unset (``None``) checks are not made.

    :param dtype: Expected type of the values: integral, fractional, numeric, string, boolean, timestamp.
    :param required: The column must be present.
    :param max_null_fraction: Highest allowed share of nulls, 0..1.
    :param max_zero_fraction: Highest allowed share of zeros among numeric values, 0..1: nulls that
        were filled with 0 upstream show up here, not in the null share.
    :param min_value: Lowest allowed value (numeric and timestamp columns: epoch seconds).
    :param max_value: Highest allowed value.
    :param finite: Numeric values must be finite: no ``inf`` or ``-inf`` (``Infinity`` in CSV).
    :param allowed_values: The set of allowed categories (string columns).
    :param unique: Values must be (probably) unique.
    :param max_age: Freshness: the newest timestamp may be at most this old (``"7d"`` or a timedelta).
    :param quantiles: ``{q: (low, high)}``: bounds on the column's quantiles, e.g. ``{0.5: (8, 14)}``.
    :param severity: ``fail`` or ``warn`` for all of this column's checks, or a mapping from check
        name to severity; checks not named are ``fail``.
    """

    dtype: DType | None = None
    required: bool = True
    max_null_fraction: float | None = None
    max_zero_fraction: float | None = None
    min_value: float | None = None
    max_value: float | None = None
    finite: bool = False
    allowed_values: frozenset[str] | None = None
    unique: bool = False
    max_age: timedelta | None = None
    quantiles: Mapping[float, tuple[float, float]] | None = None
    severity: Severity | Mapping[str, Severity] = "fail"

    def __post_init__(self) -> None:
        if self.dtype is not None:
            _choice(self.dtype, DTYPES, "dtype")
        for key in ("max_null_fraction", "max_zero_fraction"):
            value = getattr(self, key)
            if value is not None and not 0 <= value <= 1:
                raise ContractError(f"{key} is {value}; expected 0..1")
        if self.allowed_values is not None and not isinstance(self.allowed_values, frozenset):
            object.__setattr__(self, "allowed_values", frozenset(str(v) for v in self.allowed_values))
        if self.max_age is not None and not isinstance(self.max_age, timedelta):
            object.__setattr__(self, "max_age", parse_duration(self.max_age, "max_age"))
        if isinstance(self.severity, str):
            _choice(self.severity, SEVERITIES, "severity")
        else:
            for check, sev in self.severity.items():
                _choice(check, CHECKS, "severity check name")
                _choice(sev, SEVERITIES, f"severity of {check!r}")
        for q, bounds in (self.quantiles or {}).items():
            if not 0 <= float(q) <= 1 or len(bounds) != 2 or bounds[0] > bounds[1]:
                raise ContractError(f"quantiles entry {q!r}: {bounds!r}; expected q in 0..1 and (low, high)")

    def severity_of(self, check: str) -> Severity:
        if isinstance(self.severity, str):
            return self.severity
        return self.severity.get(check, "fail")


@dataclass(frozen=True)
class DataContract:
    """What a dataset must satisfy.

    :param columns: Rules per column name.
    :param min_rows: Fewest rows allowed.
    :param max_rows: Most rows allowed.
    :param allow_extra_columns: Whether columns the contract does not name are allowed.
    :param severity: Severity of the table-level checks (rows, extra columns).
    :param name: A name for reports.
    """

    columns: Mapping[str, ColumnRule] = field(default_factory=dict)
    min_rows: int | None = 1
    max_rows: int | None = None
    allow_extra_columns: bool = True
    severity: Severity = "fail"
    name: str = "contract"

    def __post_init__(self) -> None:
        _choice(self.severity, SEVERITIES, "severity")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DataContract:
        """Build a contract from plain data (as loaded from YAML), rejecting unknown keys by name."""
        table_keys = {f.name for f in fields(cls)}
        unknown = set(raw) - table_keys
        if unknown:
            raise ContractError(f"unknown contract key(s) {sorted(unknown)}; expected {sorted(table_keys)}")
        column_keys = {f.name for f in fields(ColumnRule)}
        columns = {}
        for name, rule in (raw.get("columns") or {}).items():
            rule = dict(rule or {})
            bad = set(rule) - column_keys
            if bad:
                raise ContractError(
                    f"column {name!r}: unknown key(s) {sorted(bad)}; expected {sorted(column_keys)}"
                )
            if "quantiles" in rule and rule["quantiles"] is not None:
                rule["quantiles"] = {float(q): tuple(b) for q, b in rule["quantiles"].items()}
            try:
                columns[str(name)] = ColumnRule(**rule)
            except ContractError as err:
                raise ContractError(f"column {name!r}: {err}") from None
        return cls(**{**raw, "columns": columns})

    @classmethod
    def from_yaml(cls, source: str | Path) -> DataContract:
        """Load a contract from a YAML file path or YAML text."""
        import yaml

        text = (
            Path(source).read_text() if isinstance(source, Path) or "\n" not in str(source) else str(source)
        )
        raw = yaml.safe_load(text)
        if not isinstance(raw, dict):
            raise ContractError(f"a contract must be a mapping; got {type(raw).__name__}")
        return cls.from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        """Return plain data that :meth:`from_dict` turns back into this contract."""
        out = asdict(self)
        for rule in out["columns"].values():
            if rule["allowed_values"] is not None:
                rule["allowed_values"] = sorted(rule["allowed_values"])
            if rule["max_age"] is not None:
                rule["max_age"] = f"{rule['max_age'].total_seconds():g}s"
            if rule["quantiles"] is not None:
                rule["quantiles"] = {q: list(b) for q, b in rule["quantiles"].items()}
        return out
