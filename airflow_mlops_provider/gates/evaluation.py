"""Evaluating the gates: results, the checks of every declared gate, and an evaluation frame scored once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
from airflow_mlops_provider.gates.declarations import FairnessGate
from airflow_mlops_provider.gates.filters import filter_mask, parse_filter
from airflow_mlops_provider.gates.metrics import GateStatus, Operator, _compare, compute_metrics
from airflow_mlops_provider.gates.promotion_gates import PromotionGates


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate.

    :param gate: ``threshold:roc_auc``, ``no_regression:roc_auc``, ``slice:<name>:<metric>``,
        ``latency:p95_ms``, ``evidence:<what>`` or ``evaluation:<model>``.
    :param status: ``passed``, ``failed`` or ``skipped``.
    :param observed: What was measured (a number or a short text).
    :param required: What was required, as text (``>= 0.8``).
    :param detail: Anything else a reader needs.
    """

    gate: str
    status: GateStatus
    observed: Any = None
    required: str = ""
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "failed"

    def describe(self) -> str:
        observed = f"{self.observed:.4g}" if isinstance(self.observed, float) else self.observed
        text = f"gate {self.gate!r} {self.status}: observed {observed}, required {self.required}"
        return f"{text} ({self.detail})" if self.detail else text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def bound_result(
    gate: str, observed: float | None, op: Operator, bound: float, detail: str = ""
) -> GateResult:
    """Compare ``observed`` with ``op bound``; a missing value fails."""
    required = f"{op} {bound:.6g}"
    if observed is None or observed != observed:  # NaN
        return GateResult(gate, "failed", None, required, detail or "metric could not be computed")
    passed = _compare(observed, op, bound)
    return GateResult(gate, "passed" if passed else "failed", _round(observed), required, detail)


def apply_gates(
    gates: PromotionGates,
    candidate: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    *,
    champion_version: str | None = None,
    latency: Mapping[str, float] | None = None,
) -> list[GateResult]:
    """Apply the metric, regression, slice and latency gates to evaluation reports.

    :param candidate: ``{"overall": {metric: value}, "slices": {name: {"rows": n, "metrics": {...},
        "error": str | None}}}`` as :func:`evaluate_frame` returns.
    :param champion: The champion's report on the same data, or ``None`` when there is no champion.
    :param latency: ``{"p50_ms": .., "p95_ms": ..}`` measured on the candidate.
    """
    results: list[GateResult] = []
    overall = candidate.get("overall", {})
    for t in gates.thresholds:
        results.append(bound_result(f"threshold:{t.metric}", overall.get(t.metric), t.op, t.value))

    for r in gates.no_regression:
        gate = f"no_regression:{r.metric}"
        if champion is None:
            results.append(GateResult(gate, "skipped", _round(overall.get(r.metric)), "n/a", "no champion"))
            continue
        champ_value = champion.get("overall", {}).get(r.metric)
        if champ_value is None:
            results.append(
                GateResult(gate, "failed", None, "champion value", "champion metric could not be computed")
            )
            continue
        op, bound = r.bound(champ_value)
        tolerance = f"{r.tolerance:g}{' relative' if r.relative else ''}"
        detail = f"champion v{champion_version}: {champ_value:.4g}, tolerance {tolerance}"
        results.append(bound_result(gate, overall.get(r.metric), op, bound, detail))

    for s in gates.slices:
        report = candidate.get("slices", {}).get(s.name, {})
        rows = int(report.get("rows", 0))
        if report.get("error"):
            results.append(GateResult(f"slice:{s.name}", "failed", None, s.where, report["error"]))
            continue
        if rows < s.min_rows:
            results.append(
                GateResult(
                    f"slice:{s.name}:rows", "failed", rows, f">= {s.min_rows}", f"rows where {s.where}"
                )
            )
            continue
        for t in s.thresholds:
            detail = f"{rows} rows where {s.where}"
            results.append(
                bound_result(
                    f"slice:{s.name}:{t.metric}",
                    report.get("metrics", {}).get(t.metric),
                    t.op,
                    t.value,
                    detail,
                )
            )

    for f in gates.fairness:
        results += _fairness_results(f, candidate.get("fairness", {}).get(f.name))

    if gates.latency is not None:
        budget = gates.latency
        measured = latency or {}
        detail = f"batch of {budget.sample_rows} rows, {budget.repeats} calls"
        for key in ("p50_ms", "p95_ms"):
            limit = getattr(budget, key)
            if limit is not None:
                results.append(bound_result(f"latency:{key}", measured.get(key), "<=", limit, detail))
    return results


def _fairness_results(gate: FairnessGate, report: Mapping[str, Any] | None) -> list[GateResult]:
    """One result per bound of ``gate``; a report that is missing or could not be computed fails."""
    from airflow_mlops_provider.fairness import describe_groups

    name = f"fairness:{gate.name}"
    if not report or report.get("error"):
        why = (report or {}).get("error") or "no fairness figures were computed"
        return [GateResult(name, "failed", None, f"groups of {list(gate.sensitive)}", why)]
    bounds: list[tuple[str, float | None, Operator, float, str]] = []
    label_bounds: tuple[tuple[str, Operator, str], ...] = (
        ("max_demographic_parity_difference", "<=", "selection_rate"),
        ("min_demographic_parity_ratio", ">=", "selection_rate"),
        ("max_equalized_odds_difference", "<=", "true_positive_rate"),
    )
    for key, op, rate in label_bounds:
        limit = getattr(gate, key)
        if limit is not None:
            figure = key.split("_", 1)[1]
            bounds.append((figure, report.get(figure), op, limit, f"{rate}: {describe_groups(report, rate)}"))
    if gate.max_metric_difference is not None:
        for metric in gate.metrics:
            observed = (report.get("metric_differences") or {}).get(metric)
            bounds.append(
                (
                    f"{metric}_difference",
                    observed,
                    "<=",
                    gate.max_metric_difference,
                    describe_groups(report, metric),
                )
            )
    return [
        bound_result(f"{name}:{figure}", observed, op, limit, detail)
        for figure, observed, op, limit, detail in bounds
    ]


def evaluate_frame(
    predict_scores: Any,
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str],
    gates: PromotionGates,
    kind: str | None = None,
) -> dict[str, Any]:
    """Evaluate a model on ``frame``: whole-set metrics and every slice's metrics.

    :param predict_scores: ``callable(features_frame) -> 1-D scores``; the model is called once on the
        whole frame, and slices reuse those scores.
    :param kind: The model's kind (see :func:`compute_metrics`).
    """
    import numpy as np

    names = gates.metrics
    scores = np.asarray(predict_scores(frame[list(features)]), dtype=float)
    if scores.shape[0] != len(frame):
        raise ValueError(f"model returned {scores.shape[0]} predictions for {len(frame)} rows")
    y = frame[target].to_numpy()
    report: dict[str, Any] = {
        "rows": len(frame),
        "overall": compute_metrics(y, scores, names, kind),
        "slices": {},
    }
    for s in gates.slices:
        try:
            mask = filter_mask(parse_filter(s.where), frame, s.where)
        except (KeyError, TypeError, ValueError) as err:
            report["slices"][s.name] = {"rows": 0, "metrics": {}, "error": str(err).strip("\"'")}
            continue
        rows = int(mask.sum())
        metrics = (
            compute_metrics(y[mask], scores[mask], [t.metric for t in s.thresholds], kind) if rows else {}
        )
        report["slices"][s.name] = {"rows": rows, "metrics": metrics, "error": None}
    if gates.fairness:
        from airflow_mlops_provider.fairness import fairness_report

        report["fairness"] = {f.name: fairness_report(f, frame, y, scores, kind) for f in gates.fairness}
    return report
