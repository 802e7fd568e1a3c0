"""A data contract checked against a profile's statistics: every check's outcome, and the verdict."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from airflow_mlops_provider.data.contract.declarations import (
    UNIQUE_TOLERANCE,
    ColumnRule,
    DataContract,
    Severity,
)
from airflow_mlops_provider.data.profiles import EXACT_CATEGORIES_LIMIT, ColumnStats, ProfileSummary


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
