"""Contracts from a reference profile (the champion's training data), and explicit rules laid over them."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from airflow_mlops_provider.data.contract.declarations import (
    CHECKS,
    ColumnRule,
    DataContract,
    DType,
    Severity,
)
from airflow_mlops_provider.data.profiles import ProfileSummary


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
