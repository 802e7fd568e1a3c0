"""Has a model version decayed? A policy fixed up front, and the decision it gives on a live report.

A :class:`DecayPolicy` compares a version's live metric (:func:`~.performance.live_metrics`) with the
same metric from the version's own offline evaluation, and optionally with an absolute threshold.
It fails closed: too few labelled rows, or a comparison without the number it needs, gives
``insufficient_data``, never ``ok``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from airflow_mlops_provider.exceptions import GateConfigError
from airflow_mlops_provider.gates import (
    METRICS,
    Operator,
    RegressionGate,
    Threshold,
    YamlDeclared,
    bound_result,
    check_model_kind,
    kind_mismatch,
    metric_spec,
)
from airflow_mlops_provider.gates.metrics import _number

DecayStatus = Literal["ok", "degraded", "insufficient_data"]

_KEYS = ("metric", "max_drop", "relative", "threshold", "min_rows", "require_significance")


@dataclass(frozen=True)
class DecayPolicy(YamlDeclared):
    """When a version counts as degraded.

    :param metric: A name from :data:`~airflow_mlops_provider.gates.METRICS`.
    :param max_drop: Largest allowed loss of the live value against the version's offline value, in
        the metric's direction (for ``rmse`` a rise is the loss); ``None`` for no such check.
    :param relative: Read ``max_drop`` as a fraction of the offline value.
    :param threshold: An absolute bound on a live metric of the same kind (``roc_auc >= 0.7``).
    :param min_rows: Fewer labelled rows than this gives ``insufficient_data``, never a decision.
    :param require_significance: Degraded only when the whole confidence interval is past the bound
        (the drop is beyond noise at the report's confidence), not just the point estimate.
    """

    metric: str
    max_drop: float | None = None
    relative: bool = False
    threshold: Threshold | None = None
    min_rows: int = 200
    require_significance: bool = False

    _yaml_name = "decay"
    _yaml_what = "decay policy"
    _yaml_keys = _KEYS

    def __post_init__(self) -> None:
        spec = metric_spec(self.metric, "decay.metric")
        if self.max_drop is None and self.threshold is None:
            raise GateConfigError("decay: give max_drop, threshold or both; neither was given")
        if self.max_drop is not None and (
            isinstance(self.max_drop, bool)
            or not isinstance(self.max_drop, (int, float))
            or self.max_drop < 0
        ):
            raise GateConfigError(f"decay.max_drop: {self.max_drop!r}, expected a number >= 0")
        if self.threshold is not None and METRICS[self.threshold.metric].task != spec.task:
            raise GateConfigError(
                f"decay.threshold: {str(self.threshold)!r} reads a {METRICS[self.threshold.metric].task} "
                f"metric but decay.metric {self.metric!r} is a {spec.task} metric; a model is one kind"
            )
        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, int) or self.min_rows < 1:
            raise GateConfigError(f"decay.min_rows: {self.min_rows!r}, expected a whole number >= 1")
        for key in ("relative", "require_significance"):
            if not isinstance(getattr(self, key), bool):
                raise GateConfigError(f"decay.{key}: {getattr(self, key)!r}; allowed: [true, false]")

    @property
    def kind(self) -> str:
        """The kind of model the policy judges, from its metric."""
        return METRICS[self.metric].task

    @property
    def metrics(self) -> list[str]:
        """Every metric the policy reads."""
        return sorted({self.metric, *([self.threshold.metric] if self.threshold else [])})

    def check_kind(self, kind: str, source: str = "") -> None:
        """Raise :class:`GateConfigError` unless the policy's metrics suit a model of ``kind``."""
        check_model_kind(kind)
        if self.kind != kind:
            raise kind_mismatch(f"decay policy reads {self.metrics}, {self.kind} metrics", kind, source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecayPolicy:
        """Build from a mapping with keys ``metric``, ``max_drop``, ``relative``, ``threshold``,
        ``min_rows`` and ``require_significance`` (the YAML layout)."""
        if not isinstance(data, Mapping):
            raise GateConfigError(f"decay: expected a mapping, got {type(data).__name__} {data!r}")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise GateConfigError(f"decay: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
        if "metric" not in data:
            raise GateConfigError(f"decay: {dict(data)!r} has no 'metric'")
        kwargs = dict(data)
        if kwargs.get("max_drop") is not None:
            kwargs["max_drop"] = _number(kwargs["max_drop"], "decay.max_drop")
        if kwargs.get("threshold") is not None:
            kwargs["threshold"] = Threshold.parse(kwargs["threshold"], "decay.threshold")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-friendly form :meth:`from_dict` reads back."""
        return {
            "metric": self.metric,
            "max_drop": self.max_drop,
            "relative": self.relative,
            "threshold": str(self.threshold) if self.threshold else None,
            "min_rows": self.min_rows,
            "require_significance": self.require_significance,
        }


def decide(
    report: Mapping[str, Any],
    offline_metrics: Mapping[str, Any],
    policy: DecayPolicy | Mapping[str, Any] | str | Path,
) -> dict[str, Any]:
    """Decide from a live report whether the version has degraded.

    ``degraded`` when a check fails; otherwise ``insufficient_data`` when a check lacked what it needs
    (a live value, the offline value for ``max_drop``, an interval under ``require_significance``);
    ``ok`` only when every configured check had its evidence and passed. Fewer than ``min_rows``
    labelled rows gives ``insufficient_data`` before any check.

    :param report: What :func:`~airflow_mlops_provider.monitoring.performance.live_metrics` returned.
    :param offline_metrics: The version's own offline evaluation, ``{metric: value}``.
    :param policy: A :class:`DecayPolicy`, or its mapping or YAML form.
    :return: ``{"status", "metric", "rows", "min_rows", "reasons": [text], "checks": [{"check",
        "metric", "status", "live", "ci_low", "ci_high", "offline", "tolerance", "required", "rows",
        "reason"}], "policy"}``, JSON-serialisable.
    """
    policy = DecayPolicy.coerce(policy)
    if report.get("kind"):
        policy.check_kind(str(report["kind"]), "the live report's kind")
    live = report.get("metrics", {})
    rows = int(live.get(policy.metric, {}).get("rows", report.get("rows", 0)))
    decision: dict[str, Any] = {
        "status": "insufficient_data",
        "metric": policy.metric,
        "rows": rows,
        "min_rows": policy.min_rows,
        "reasons": [],
        "checks": [],
        "policy": policy.to_dict(),
    }
    if rows < policy.min_rows:
        decision["reasons"] = [
            f"{policy.metric}: {rows} labelled rows, fewer than min_rows {policy.min_rows}; no decision"
        ]
        return decision

    checks = []
    if policy.max_drop is not None:
        offline = offline_metrics.get(policy.metric)
        checks.append(_drop_check(policy, policy.max_drop, live.get(policy.metric, {}), offline))
    if policy.threshold is not None:
        t = policy.threshold
        checks.append(
            _check("threshold", t.metric, live.get(t.metric, {}), t.op, t.value, policy, {"offline": None})
        )
    statuses = {c["status"] for c in checks}
    decision["status"] = next(s for s in ("degraded", "insufficient_data", "ok") if s in statuses)
    decision["checks"] = checks
    decision["reasons"] = [c["reason"] for c in checks]
    return decision


def worse_than(
    live_new: Mapping[str, Any],
    live_old: Mapping[str, Any],
    metric: str,
    min_rows: int,
    *,
    tolerance: float = 0.0,
) -> bool | None:
    """Is the new version's live ``metric`` worse than the old one's by more than ``tolerance``?

    For a rollback policy comparing two versions served side by side (or one after the other).

    :return: ``True`` or ``False``; ``None`` when either report has fewer than ``min_rows`` labelled
        rows for ``metric`` or the metric could not be computed on it.
    """
    higher_is_better = metric_spec(metric, "worse_than").higher_is_better
    values = []
    for report in (live_new, live_old):
        entry = report.get("metrics", {}).get(metric, {})
        value = entry.get("value")
        if int(entry.get("rows", 0)) < min_rows or value is None or value != value:
            return None
        values.append(float(value))
    new, old = values
    return new < old - tolerance if higher_is_better else new > old + tolerance


def _drop_check(
    policy: DecayPolicy, max_drop: float, entry: Mapping[str, Any], offline: Any
) -> dict[str, Any]:
    metric = policy.metric
    tolerance = f"{max_drop:g}{' relative' if policy.relative else ''}"
    if offline is None or offline != offline:
        return _entry(
            "max_drop",
            metric,
            entry,
            "insufficient_data",
            f"{metric}: no offline value for this version, and max_drop {tolerance} needs one; no decision",
            offline=None,
            tolerance=tolerance,
        )
    op, bound = RegressionGate(metric, max_drop, policy.relative).bound(float(offline))
    return _check(
        "max_drop", metric, entry, op, bound, policy, {"offline": float(offline), "tolerance": tolerance}
    )


def _check(
    check: str,
    metric: str,
    entry: Mapping[str, Any],
    op: Operator,
    bound: float,
    policy: DecayPolicy,
    extra: dict[str, Any],
) -> dict[str, Any]:
    value = entry.get("value")
    low, high = entry.get("ci_low"), entry.get("ci_high")
    rows = int(entry.get("rows", 0))
    required = f"{op} {bound:.6g}"
    offline = extra.get("offline")
    versus = f" vs offline {offline:.4g}, max_drop {extra['tolerance']}" if offline is not None else ""
    if value is None or value != value:
        reason = f"{metric}: could not be computed on {rows} live rows; no decision"
        return _entry(check, metric, entry, "insufficient_data", reason, required=required, **extra)
    ci = f" [{low:.4g}, {high:.4g}]" if low is not None and high is not None else ""
    observed = value
    if policy.require_significance:
        # The interval's end most favourable to the model must still fail for a degraded verdict.
        observed = high if op in (">=", ">") else low
        if observed is None:
            reason = (
                f"{metric}: live {value:.4g} has no confidence interval, which require_significance needs"
            )
            return _entry(check, metric, entry, "insufficient_data", reason, required=required, **extra)
    passed = bound_result(f"{check}:{metric}", observed, op, bound).passed
    status = "ok" if passed else "degraded"
    basis = " (interval)" if policy.require_significance else ""
    reason = f"{metric}: live {value:.4g}{ci} on {rows} rows{versus}; required {required}{basis}: {status}"
    return _entry(check, metric, entry, status, reason, required=required, **extra)


def _entry(
    check: str, metric: str, entry: Mapping[str, Any], status: str, reason: str, **extra: Any
) -> dict[str, Any]:
    return {
        "check": check,
        "metric": metric,
        "status": status,
        "live": entry.get("value"),
        "ci_low": entry.get("ci_low"),
        "ci_high": entry.get("ci_high"),
        "rows": int(entry.get("rows", 0)),
        "offline": None,
        "tolerance": None,
        "required": None,
        **extra,
        "reason": reason,
    }
