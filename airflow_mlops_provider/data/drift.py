"""Drift between a target profile and a reference profile, column by column.

whylogs' own algorithms compute the statistics from the sketches: Kolmogorov-Smirnov for numeric
columns (on the KLL quantile sketches), chi-square for categorical ones (on the frequent items).
With large samples a p-value flags shifts too small to matter, so a column drifts only when the
test is significant **and** the effect is large enough: the KS statistic D for numeric columns,
Cramér's V (sqrt(chi2 / n)) for categorical ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from whylogs.core import DatasetProfileView

Outcome = Literal["no_drift", "possible_drift", "drift"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)


@dataclass(frozen=True)
class ColumnDriftThreshold:
    """When one column counts as drifted.

    :param drift_pvalue: p-value below which the shift is significant enough for ``drift``.
    :param possible_pvalue: p-value below which it is ``possible_drift``.
    :param min_effect: Effect size (KS D, or Cramér's V) a significant shift needs to count.
    """

    drift_pvalue: float = 0.05
    possible_pvalue: float = 0.15
    min_effect: float = 0.1

    def classify(self, pvalue: float, effect: float) -> Outcome:
        if effect < self.min_effect:
            return "no_drift"
        if pvalue < self.drift_pvalue:
            return "drift"
        if pvalue < self.possible_pvalue:
            return "possible_drift"
        return "no_drift"


@dataclass(frozen=True)
class DriftThresholds:
    """Thresholds per column and for the dataset as a whole.

    :param default: Threshold for columns without one of their own.
    :param columns: Thresholds per column name.
    :param ignore: Columns left out (ids, timestamps, the target…).
    :param drift_share: The dataset drifts when more than this share of columns drift (0: any one).
    """

    default: ColumnDriftThreshold = field(default_factory=ColumnDriftThreshold)
    columns: Mapping[str, ColumnDriftThreshold] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()
    drift_share: float = 0.0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DriftThresholds:
        known = {"default", "columns", "ignore", "drift_share"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown drift threshold key(s) {sorted(unknown)}; expected {sorted(known)}")
        return cls(
            default=ColumnDriftThreshold(**(raw.get("default") or {})),
            columns={k: ColumnDriftThreshold(**v) for k, v in (raw.get("columns") or {}).items()},
            ignore=frozenset(raw.get("ignore") or ()),
            drift_share=float(raw.get("drift_share", 0.0)),
        )

    def for_column(self, name: str) -> ColumnDriftThreshold:
        return self.columns.get(name, self.default)


@dataclass
class ColumnDrift:
    column: str
    algorithm: str
    statistic: float
    pvalue: float
    effect: float
    outcome: Outcome


@dataclass
class DriftReport:
    """Per-column drift and the overall outcome."""

    outcome: Outcome
    drift_share: float
    columns: dict[str, ColumnDrift]
    missing_columns: list[str]
    new_columns: list[str]

    @property
    def drifted(self) -> list[str]:
        return sorted(c for c, d in self.columns.items() if d.outcome == "drift")

    def top(self, n: int = 5) -> list[ColumnDrift]:
        """The ``n`` columns with the largest effect."""
        return sorted(self.columns.values(), key=lambda d: d.effect, reverse=True)[:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "drift_share": round(self.drift_share, 4),
            "drifted_columns": self.drifted,
            "missing_columns": self.missing_columns,
            "new_columns": self.new_columns,
            "columns": {c: asdict(d) for c, d in sorted(self.columns.items())},
        }


def _n(view: DatasetProfileView, column: str) -> int:
    col = view.get_column(column)
    metric = col.get_metric("counts") if col is not None else None
    return int(metric.n.value - metric.null.value) if metric is not None else 0


def compare(
    target: DatasetProfileView, reference: DatasetProfileView, thresholds: DriftThresholds | None = None
) -> DriftReport:
    """Compare ``target`` to ``reference`` and classify each shared column and the whole."""
    import warnings

    from whylogs.viz.drift.column_drift_algorithms import calculate_drift_scores

    thresholds = thresholds or DriftThresholds()
    target_cols = set(target.get_columns())
    reference_cols = set(reference.get_columns())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = calculate_drift_scores(target_view=target, reference_view=reference, with_thresholds=False)
    columns: dict[str, ColumnDrift] = {}
    for name, score in scores.items():
        if score is None or name in thresholds.ignore or name not in reference_cols:
            continue
        algorithm = score["algorithm"]
        statistic = float(score["statistic"])
        pvalue = float(score["pvalue"])
        if algorithm == "ks":
            effect = statistic
        else:
            n = max(_n(target, name), 1)
            effect = min(1.0, math.sqrt(max(statistic, 0.0) / n))
        outcome = thresholds.for_column(name).classify(pvalue, effect)
        columns[name] = ColumnDrift(name, algorithm, statistic, pvalue, effect, outcome)
    drifted = sum(d.outcome == "drift" for d in columns.values())
    share = drifted / len(columns) if columns else 0.0
    if drifted and share > thresholds.drift_share:
        overall: Outcome = "drift"
    elif drifted or any(d.outcome == "possible_drift" for d in columns.values()):
        overall = "possible_drift"
    else:
        overall = "no_drift"
    return DriftReport(
        outcome=overall,
        drift_share=share,
        columns=columns,
        missing_columns=sorted(reference_cols - target_cols - thresholds.ignore),
        new_columns=sorted(target_cols - reference_cols - thresholds.ignore),
    )


def at_least(outcome: str, threshold: str) -> bool:
    """Whether ``outcome`` is as severe as ``threshold`` (no_drift < possible_drift < drift)."""
    return OUTCOMES.index(outcome) >= OUTCOMES.index(threshold)


def plot_top_drift(
    report: DriftReport,
    target: DatasetProfileView,
    reference: DatasetProfileView,
    path: str,
    columns: Sequence[str] | None = None,
    n: int = 4,
) -> str:
    """Draw the distributions of the columns that drifted most (reference vs target) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    chosen = list(columns) if columns else [d.column for d in report.top(n)]
    if not chosen:
        chosen = []
    fig, axes = plt.subplots(max(len(chosen), 1), 1, figsize=(7, 2.6 * max(len(chosen), 1)), squeeze=False)
    probs = np.linspace(0.01, 0.99, 99)
    for ax, name in zip(axes[:, 0], chosen, strict=False):
        d = report.columns[name]
        title = f"{name}: {d.outcome} ({d.algorithm} effect {d.effect:.2f}, p={d.pvalue:.3g})"
        if d.algorithm == "ks":
            for view, label in ((reference, "reference"), (target, "target")):
                kll = view.get_column(name).get_metric("distribution").kll.value
                ax.plot(kll.get_quantiles(list(probs)), probs, label=label)
            ax.set_ylabel("CDF")
        else:
            ref = _frequencies(reference, name)
            tgt = _frequencies(target, name)
            labels = sorted(set(ref) | set(tgt))
            x = np.arange(len(labels))
            ax.bar(x - 0.2, [ref.get(k, 0) for k in labels], 0.4, label="reference")
            ax.bar(x + 0.2, [tgt.get(k, 0) for k in labels], 0.4, label="target")
            ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
            ax.set_ylabel("share")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    if not chosen:
        axes[0, 0].text(0.5, 0.5, "no shared columns to compare", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _frequencies(view: DatasetProfileView, name: str) -> dict[str, float]:
    summary = view.get_column(name).to_summary_dict()
    items = summary.get("frequent_items/frequent_strings") or []
    total = sum(i.est for i in items) or 1
    return {str(i.value): i.est / total for i in items}
