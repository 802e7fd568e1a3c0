"""Group fairness of a model on its evaluation data, computed with Fairlearn (``fairlearn.metrics``).

For each :class:`~airflow_mlops_provider.gates.FairnessGate`: the groups of its sensitive columns
(every combination of their values that occurs), each group's row count, selection rate, true and
false positive rates and the gate metrics (with the gates' own
:func:`~airflow_mlops_provider.gates.compute_metrics`), and the disparities between groups:
demographic parity difference and ratio, equalized odds difference, and each metric's largest
difference between two groups. Groups with fewer than ``min_group_rows`` rows are reported but left
out of the disparities (a rate on twelve people says little), unless the gate asks to include them.
Classification labels are ``score >= 0.5``, as in every gate. Airflow-free; Fairlearn, numpy and
pandas are imported inside the function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.gates import FairnessGate, compute_metrics

if TYPE_CHECKING:
    import pandas as pd

#: The separator of a group's values when a gate has several sensitive columns (``f|young``).
GROUP_SEPARATOR = "|"


def fairness_report(
    gate: FairnessGate, frame: pd.DataFrame, y: Any, scores: Any, kind: str | None
) -> dict[str, Any]:
    """Return the per-group figures and the disparities of one gate (JSON-friendly).

    :param frame: The evaluation data, with the gate's sensitive columns (features or not).
    :param y: The true values, row for row with ``frame``.
    :param scores: The model's scores (positive-class probability, or the regression value).
    :return: ``{"sensitive", "groups": {group: {"rows", "selection_rate", "true_positive_rate",
        "false_positive_rate", <metric>: value}}, "gated_groups", "small_groups", "min_group_rows",
        "demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
        "metric_differences": {metric: value}, "error"}``; ``error`` says why nothing could be
        computed (a sensitive column missing, fewer than two groups large enough).
    """
    import numpy as np
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    report: dict[str, Any] = {
        "sensitive": list(gate.sensitive),
        "min_group_rows": gate.min_group_rows,
        "groups": {},
        "gated_groups": [],
        "small_groups": [],
        "demographic_parity_difference": None,
        "demographic_parity_ratio": None,
        "equalized_odds_difference": None,
        "metric_differences": {},
        "error": None,
    }
    missing = [c for c in gate.sensitive if c not in frame.columns]
    if missing:
        report["error"] = (
            f"sensitive column(s) {missing} are not in the evaluation data (columns: {sorted(frame.columns)})"
        )
        return report
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=float)
    groups = frame[list(gate.sensitive)].astype("string").fillna("<null>")
    labels = groups.agg(GROUP_SEPARATOR.join, axis=1).to_numpy()
    classification = kind != "regression"
    predicted = (scores >= 0.5).astype(int)

    def metric(name: str) -> Any:
        return lambda y_true, y_score: _none_to_nan(compute_metrics(y_true, y_score, [name], kind)[name])

    per_group: dict[str, Any] = {"rows": lambda y_true, y_score: len(y_true)}
    per_group.update({m: metric(m) for m in gate.metrics})
    table = MetricFrame(metrics=per_group, y_true=y, y_pred=scores, sensitive_features=labels).by_group
    if classification:
        rates = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "true_positive_rate": true_positive_rate,
                "false_positive_rate": false_positive_rate,
            },
            y_true=y,
            y_pred=predicted,
            sensitive_features=labels,
        ).by_group
        table = table.join(rates)
    for group, row in table.iterrows():
        report["groups"][str(group)] = {
            k: (int(v) if k == "rows" else _round(v)) for k, v in row.to_dict().items()
        }
    sizes = {g: entry["rows"] for g, entry in report["groups"].items()}
    gated = sorted(g for g, n in sizes.items() if gate.gate_small_groups or n >= gate.min_group_rows)
    report["gated_groups"] = gated
    report["small_groups"] = sorted(set(sizes) - set(gated))
    if len(gated) < 2:
        report["error"] = (
            f"fewer than two groups of {list(gate.sensitive)} have {gate.min_group_rows} rows or more "
            f"(group rows: {sizes}); no disparity can be measured"
        )
        return report
    keep = np.isin(labels, gated)
    if classification:
        kept = {"y_true": y[keep], "y_pred": predicted[keep], "sensitive_features": labels[keep]}
        report["demographic_parity_difference"] = _round(demographic_parity_difference(**kept))
        report["demographic_parity_ratio"] = _round(demographic_parity_ratio(**kept))
        report["equalized_odds_difference"] = _round(equalized_odds_difference(**kept))
    for name in gate.metrics:
        values = [report["groups"][g][name] for g in gated]
        defined = [v for v in values if v is not None]
        report["metric_differences"][name] = (
            _round(max(defined) - min(defined)) if len(defined) == len(values) else None
        )
    return report


def _none_to_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _round(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(value, 6)


def describe_groups(report: Mapping[str, Any], metric: str) -> str:
    """``f: 0.81 (412 rows), m: 0.62 (398 rows)``: one figure of every gated group, for messages."""
    parts = []
    for group in report.get("gated_groups") or []:
        entry = report["groups"][group]
        value = entry.get(metric)
        parts.append(f"{group}: {'n/a' if value is None else f'{value:.3g}'} ({entry['rows']} rows)")
    small = report.get("small_groups") or []
    if small:
        parts.append(f"not gated, under {report['min_group_rows']} rows: {', '.join(small)}")
    return ", ".join(parts)
