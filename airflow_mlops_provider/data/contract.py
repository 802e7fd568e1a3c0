"""Data contracts: what a dataset must look like, checked against its whylogs profile.

A contract is declared in Python::

    DataContract(
        min_rows=1_000,
        columns={
            "tenure": ColumnRule(dtype="integral", max_null_fraction=0.01, min_value=0, max_value=120),
            "contract": ColumnRule(dtype="string", allowed_values={"month-to-month", "one-year", "two-year"}),
            "signup_date": ColumnRule(dtype="timestamp", max_age="7d", severity="warn"),
        },
    )

or in YAML (same keys; see ``DataContract.from_dict``), or derived from a reference profile (the
champion's training data) with :func:`derive_contract`. Every check has a severity: ``fail`` makes
the gate fail, ``warn`` is reported and lets the run continue.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, get_args

from airflow_mlops_provider.data.profiles import EXACT_CATEGORIES_LIMIT, ColumnStats, ProfileSummary

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


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    check: str
    column: str | None
    severity: Severity
    passed: bool
    observed: Any
    allowed: Any
    message: str


@dataclass
class ValidationResult:
    """Every check's outcome, and the verdict."""

    contract: str
    results: list[CheckResult]

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed and r.severity == "fail"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed and r.severity == "warn"]

    @property
    def status(self) -> Literal["passed", "warned", "failed"]:
        if self.failures:
            return "failed"
        return "warned" if self.warnings else "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract": self.contract,
            "status": self.status,
            "checks": len(self.results),
            "failed": [asdict(r) for r in self.failures],
            "warnings": [asdict(r) for r in self.warnings],
            "results": [asdict(r) for r in self.results],
        }


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _num(x: float | None) -> str:
    if x is None:
        return "none"
    # 1e300 is a whole number too: only write out integers of a readable size in full.
    return f"{int(x)}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


_TYPE_OK = {
    "integral": {"integral"},
    "fractional": {"fractional", "integral"},
    "numeric": {"fractional", "integral"},
    "string": {"string"},
    "boolean": {"boolean"},
}


def validate(
    contract: DataContract, summary: ProfileSummary, *, now: datetime | None = None
) -> ValidationResult:
    """Check ``summary`` (a profile's statistics) against ``contract``; evaluate every check."""
    now = now or datetime.now(timezone.utc)
    results: list[CheckResult] = []

    def add(
        check: str,
        column: str | None,
        severity: Severity,
        passed: bool,
        observed: Any,
        allowed: Any,
        msg: str,
    ):
        results.append(CheckResult(check, column, severity, passed, observed, allowed, msg))

    sev = contract.severity
    if contract.min_rows is not None:
        ok = summary.rows >= contract.min_rows
        add(
            "min_rows",
            None,
            sev,
            ok,
            summary.rows,
            contract.min_rows,
            f"dataset has {summary.rows} rows, allowed at least {contract.min_rows}",
        )
    if contract.max_rows is not None:
        ok = summary.rows <= contract.max_rows
        add(
            "max_rows",
            None,
            sev,
            ok,
            summary.rows,
            contract.max_rows,
            f"dataset has {summary.rows} rows, allowed at most {contract.max_rows}",
        )
    if not contract.allow_extra_columns:
        extra = sorted(set(summary.columns) - set(contract.columns))
        add(
            "extra_columns",
            None,
            sev,
            not extra,
            extra,
            [],
            f"dataset has columns the contract does not allow: {extra}",
        )

    for name, rule in contract.columns.items():
        stats = summary.column_stats.get(name)
        if stats is None:
            if rule.required:
                add(
                    "required",
                    name,
                    rule.severity_of("required"),
                    False,
                    "missing",
                    "present",
                    f"column {name!r} is missing (columns are {summary.columns})",
                )
            continue
        results.extend(_column_checks(name, rule, stats, now))
    return ValidationResult(contract.name, results)


def _column_checks(name: str, rule: ColumnRule, s: ColumnStats, now: datetime) -> Iterable[CheckResult]:
    def result(check: str, passed: bool, observed: Any, allowed: Any, msg: str) -> CheckResult:
        return CheckResult(check, name, rule.severity_of(check), passed, observed, allowed, msg)

    if rule.dtype is not None:
        if rule.dtype == "timestamp":
            ok = s.is_timestamp
            observed = s.inferred_type
            yield result(
                "dtype",
                ok,
                observed,
                "timestamp",
                f"column {name!r} is {observed}, expected timestamp (declare it a timestamp column)",
            )
        else:
            wrong = {t: n for t, n in s.types.items() if n and t not in _TYPE_OK[rule.dtype]}
            ok = not wrong
            observed = ", ".join(f"{n} {t}" for t, n in sorted(wrong.items())) or s.inferred_type
            yield result(
                "dtype",
                ok,
                s.inferred_type if ok else wrong,
                rule.dtype,
                f"column {name!r} has {observed} values, expected {rule.dtype}",
            )
    if rule.max_null_fraction is not None:
        ok = s.null_fraction <= rule.max_null_fraction + 1e-12
        yield result(
            "max_null_fraction",
            ok,
            round(s.null_fraction, 6),
            rule.max_null_fraction,
            f"column {name!r} has {_pct(s.null_fraction)} nulls, allowed at most "
            f"{_pct(rule.max_null_fraction)}",
        )
    if rule.max_zero_fraction is not None:
        zeros = s.zero_fraction
        ok = zeros is not None and zeros <= rule.max_zero_fraction + 1e-12
        yield result(
            "max_zero_fraction",
            ok,
            None if zeros is None else round(zeros, 6),
            rule.max_zero_fraction,
            f"column {name!r} has {_pct(zeros)} zeros, allowed at most {_pct(rule.max_zero_fraction)}"
            if zeros is not None
            else f"column {name!r} has no numeric values to count zeros in",
        )
    numeric = s.min is not None
    if rule.min_value is not None:
        ok = numeric and s.min is not None and s.min >= rule.min_value
        yield result(
            "min_value",
            ok,
            s.min,
            rule.min_value,
            f"column {name!r} has minimum {_num(s.min)}, allowed at least {_num(rule.min_value)}"
            if numeric
            else f"column {name!r} has no numeric values to check a minimum on",
        )
    if rule.max_value is not None:
        ok = numeric and s.max is not None and s.max <= rule.max_value
        yield result(
            "max_value",
            ok,
            s.max,
            rule.max_value,
            f"column {name!r} has maximum {_num(s.max)}, allowed at most {_num(rule.max_value)}"
            if numeric
            else f"column {name!r} has no numeric values to check a maximum on",
        )
    if rule.finite:
        # min and max are exact, so an infinity anywhere in the column shows in one of them.
        ok = not numeric or (math.isfinite(s.min or 0.0) and math.isfinite(s.max or 0.0))
        yield result(
            "finite",
            ok,
            [s.min, s.max] if numeric else None,
            "finite numbers",
            f"column {name!r} has minimum {_num(s.min)} and maximum {_num(s.max)}, expected finite "
            f"numbers (no inf or -inf)"
            if numeric
            else f"column {name!r} has no numeric values, so none that are infinite",
        )
    if rule.allowed_values is not None:
        if s.categories is None:
            yield result(
                "allowed_values",
                False,
                f"~{_num(round(s.distinct_estimate or 0))} distinct",
                sorted(rule.allowed_values),
                f"column {name!r} cannot be checked against its allowed values: about "
                f"{_num(round(s.distinct_estimate or 0))} distinct values, more than the "
                f"{EXACT_CATEGORIES_LIMIT} the profile lists exactly (or not a string column)",
            )
        else:
            unseen = sorted(set(s.categories) - rule.allowed_values)
            yield result(
                "allowed_values",
                not unseen,
                unseen,
                sorted(rule.allowed_values),
                f"column {name!r} has values outside the allowed set: {unseen} "
                f"(allowed: {sorted(rule.allowed_values)})",
            )
    if rule.unique:
        if s.distinct_estimate is None:
            yield result(
                "unique",
                False,
                None,
                s.non_null,
                f"column {name!r} cannot be checked for uniqueness: its profile keeps no distinct-count "
                f"sketch (kept for integer and string columns)",
            )
        else:
            distinct = s.distinct_estimate
            ok = s.non_null == 0 or distinct >= s.non_null * (1 - UNIQUE_TOLERANCE)
            yield result(
                "unique",
                ok,
                round(distinct),
                s.non_null,
                f"column {name!r} is not unique: about {round(distinct)} distinct values in "
                f"{s.non_null} non-null rows",
            )
    if rule.max_age is not None:
        if not s.is_timestamp or s.max is None:
            yield result(
                "max_age",
                False,
                None,
                str(rule.max_age),
                f"column {name!r} has no timestamps to check freshness on",
            )
        else:
            newest = datetime.fromtimestamp(s.max, timezone.utc)
            age = now - newest
            yield result(
                "max_age",
                age <= rule.max_age,
                newest.isoformat(),
                str(rule.max_age),
                f"column {name!r} is stale: newest value {newest.isoformat()} is "
                f"{age.total_seconds() / 86400:.1f} days old, allowed at most "
                f"{rule.max_age.total_seconds() / 86400:g} days",
            )
    for q, (low, high) in sorted((rule.quantiles or {}).items()):
        value = s.quantiles.get(str(float(q)))
        ok = value is not None and low <= value <= high
        yield result(
            "quantiles",
            ok,
            value,
            [low, high],
            f"column {name!r} quantile q{q:g} is {_num(value)}, allowed between {_num(low)} and {_num(high)}",
        )


def _is_set(rule: ColumnRule, check: str) -> bool:
    """Whether ``rule`` asks for ``check`` (rather than leaving it at its default)."""
    value = getattr(rule, check)
    if check == "required":
        return value is False  # required is the default; saying "optional" is the statement
    if check in ("unique", "finite"):
        return value is True
    return value is not None


def overlay_rule(base: ColumnRule, explicit: ColumnRule) -> ColumnRule:
    """One column's rules: ``explicit`` wins check by check; ``base`` fills the checks it leaves unset.

    So an explicit ``min_value`` replaces the derived one, while the derived zero-share ceiling, which
    the explicit rule does not mention, still applies. Each check keeps its own source's severity.
    """
    values: dict[str, Any] = {}
    severity: dict[str, Severity] = {}
    for check in CHECKS:
        source = explicit if _is_set(explicit, check) else base
        values[check] = getattr(source, check)
        severity[check] = source.severity_of(check)
    return ColumnRule(**values, severity=severity)


def overlay(base: DataContract, explicit: DataContract) -> DataContract:
    """``explicit`` over ``base`` (e.g. a contract derived from the champion's training data): the
    explicit table settings, and per column :func:`overlay_rule`; columns only one names keep theirs."""
    columns = dict(base.columns)
    for name, rule in explicit.columns.items():
        columns[name] = overlay_rule(columns[name], rule) if name in columns else rule
    return replace(explicit, columns=columns)


@dataclass(frozen=True)
class Tolerances:
    """How far a new batch may stray from the reference when a contract is derived from it.

    :param null_fraction_abs: Added to the reference's null share to make the ceiling.
    :param null_fraction_rel: The ceiling is also at least reference share times (1 + this).
    :param range_rel: Value ranges widen by this share of the reference's range on each side.
    :param range_severity: Severity of the derived range checks: ``warn`` by default, since a new
        extreme (a long tail, a price rise) is worth a look, not a stop. A column that was never
        negative must stay so, with severity ``fail``.
    :param zero_fraction_abs: Added to the reference's share of zeros to make its ceiling.
    :param quantile_rel: Quantile bounds are reference quantile +- this share of the q05..q95 spread.
    :param quantile_severity: Severity of the derived quantile checks: ``warn`` by default, since a
        genuine shift in the data is drift (the drift check's business), not broken data.
    :param row_fraction: When set, ``min_rows`` is this share of the reference's rows.
    """

    null_fraction_abs: float = 0.01
    null_fraction_rel: float = 1.0
    range_rel: float = 0.1
    range_severity: Severity = "warn"
    zero_fraction_abs: float = 0.05
    quantile_rel: float = 0.15
    quantile_severity: Severity = "warn"
    row_fraction: float | None = None


def derive_contract(
    reference: ProfileSummary, tolerances: Tolerances | None = None, *, name: str = "derived"
) -> DataContract:
    """Derive a contract from a reference profile (e.g. the champion's training data).

    Each reference column becomes required with its type, a null ceiling, a widened value range,
    its category set (when the profile lists it exactly), a ceiling on its share of zeros and
    (as warnings) bounds on its quantiles. The zero ceiling catches what the null ceiling cannot:
    nulls filled with 0 upstream. A numeric column without infinities must stay finite (``fail``):
    an ``inf`` is broken data (a division by zero upstream), not a new extreme. Bounds that the
    reference cannot give finitely (its maximum is ``inf``, or its range overflows) are left out.
    """
    t = tolerances or Tolerances()
    columns = {}
    for col, s in reference.column_stats.items():
        inferred = s.inferred_type
        dtype: DType | None = None
        if inferred == "timestamp":
            dtype = "timestamp"
        elif inferred in ("integral", "fractional"):
            dtype = "fractional" if s.types.get("fractional") else "integral"
        elif inferred in ("string", "boolean"):
            dtype = inferred  # type: ignore[assignment]
        null_ceiling = min(
            1.0, max(s.null_fraction * (1 + t.null_fraction_rel), s.null_fraction + t.null_fraction_abs)
        )
        min_value = max_value = zero_ceiling = None
        quantiles = None
        finite = False
        severity: dict[str, Severity] = {}
        if s.min is not None and s.max is not None and not s.is_timestamp:
            finite = math.isfinite(s.min) and math.isfinite(s.max)
            widen = (s.max - s.min) * t.range_rel
            min_value, max_value = _finite_or_none(s.min - widen), _finite_or_none(s.max + widen)
            severity["min_value"] = severity["max_value"] = t.range_severity
            if s.min >= 0:
                # A never-negative column that turns negative is broken data, not a new extreme.
                min_value = 0.0
                severity["min_value"] = "fail"
            spread = s.quantiles.get("0.95", s.max) - s.quantiles.get("0.05", s.min)
            margin = max(spread * t.quantile_rel, 1e-9)
            if math.isfinite(margin):
                quantiles = {
                    float(q): (v - margin, v + margin) for q, v in s.quantiles.items() if math.isfinite(v)
                } or None
            severity["quantiles"] = t.quantile_severity
            zeros = s.zero_fraction or 0.0
            zero_ceiling = round(min(1.0, max(zeros * 2, zeros + t.zero_fraction_abs)), 6)
        columns[col] = ColumnRule(
            dtype=dtype,
            max_null_fraction=round(null_ceiling, 6),
            max_zero_fraction=zero_ceiling,
            min_value=min_value,
            max_value=max_value,
            finite=finite,
            allowed_values=frozenset(s.categories) if s.categories else None,
            quantiles=quantiles,
            severity=severity or "fail",
        )
    min_rows = math.ceil(reference.rows * t.row_fraction) if t.row_fraction else 1
    return DataContract(columns=columns, min_rows=min_rows, name=name)


def _finite_or_none(bound: float) -> float | None:
    return bound if math.isfinite(bound) else None
