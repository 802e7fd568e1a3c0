"""The metrics gates judge: their specs (direction, model kind), comparisons, and computing them from scores."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from airflow_mlops_provider.exceptions import GateConfigError

Operator = Literal[">=", ">", "<=", "<"]
OPERATORS: tuple[Operator, ...] = (">=", ">", "<=", "<")
GateStatus = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class MetricSpec:
    """A metric the gates can use: its direction and what it needs from a model's output."""

    name: str
    higher_is_better: bool
    needs_scores: bool = False
    task: Literal["classification", "regression"] = "classification"


#: The metrics :func:`compute_metrics` knows. Binary classification metrics use the positive-class
#: score (``predict_proba[:, 1]`` or a 1-D score output) and labels at ``score >= 0.5``.
METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("roc_auc", True, needs_scores=True),
        MetricSpec("accuracy", True),
        MetricSpec("f1", True),
        MetricSpec("precision", True),
        MetricSpec("recall", True),
        MetricSpec("log_loss", False, needs_scores=True),
        MetricSpec("brier", False, needs_scores=True),
        MetricSpec("r2", True, task="regression"),
        MetricSpec("rmse", False, task="regression"),
        MetricSpec("mae", False, task="regression"),
    )
}


ModelKind = Literal["classification", "regression"]
MODEL_KINDS: tuple[ModelKind, ...] = ("classification", "regression")


def metrics_for(kind: str) -> list[str]:
    """The names of the metrics that apply to models of ``kind``, sorted."""
    return sorted(name for name, spec in METRICS.items() if spec.task == kind)


def _known_metrics() -> str:
    return "; ".join(f"{kind} metrics: {', '.join(metrics_for(kind))}" for kind in MODEL_KINDS)


def check_model_kind(kind: Any, where: str = "model_kind") -> ModelKind:
    """Return ``kind`` if it is a model kind, else raise naming the allowed values."""
    if kind not in MODEL_KINDS:
        raise GateConfigError(f"{where}: {kind!r} is not a model kind; allowed: {list(MODEL_KINDS)}")
    return kind


def kind_mismatch(reads: str, kind: str, source: str = "") -> GateConfigError:
    """The error for a declaration whose metrics (``reads`` says which) do not suit a ``kind`` model."""
    said = f" ({source})" if source else ""
    return GateConfigError(
        f"{reads}, but the model is a {kind} model{said}; {kind} metrics: {', '.join(metrics_for(kind))}"
    )


def metric_spec(name: str, where: str) -> MetricSpec:
    """Return the spec of metric ``name`` or raise naming ``where`` it was used and the known metrics."""
    try:
        return METRICS[name]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), list(METRICS), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise GateConfigError(f"{where}: unknown metric {name!r}{hint}; {_known_metrics()}") from None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise GateConfigError(f"{where}: expected a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise GateConfigError(f"{where}: expected a number, got {value!r}") from None


def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise GateConfigError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise GateConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _compare(observed: float, op: Operator, required: float) -> bool:
    return {
        ">=": observed >= required,
        ">": observed > required,
        "<=": observed <= required,
        "<": observed < required,
    }[op]


def scores_from_output(output: Any) -> Any:
    """Return a 1-D float array of positive-class scores (or regression values) from a model output."""
    import numpy as np
    import pandas as pd

    if isinstance(output, (pd.DataFrame, pd.Series)):
        output = output.to_numpy()
    array = np.asarray(output, dtype=float)
    if array.ndim == 2:
        array = array[:, -1] if array.shape[1] > 1 else array[:, 0]
    return array.reshape(-1)


def compute_metrics(
    y_true: Any, scores: Any, names: Sequence[str], kind: str | None = None
) -> dict[str, float | None]:
    """Compute ``names`` from true values and model scores; a metric that is undefined is ``None``.

    The single metric implementation used for candidate and champion alike.

    :param kind: The model's kind; a metric of the other kind is refused rather than computed (an
        ``accuracy`` of a regressor's outputs against ``score >= 0.5`` would be a number, and wrong).
    """
    import numpy as np
    from sklearn import metrics as skm

    if kind is not None:
        check_model_kind(kind)
        wrong = [n for n in names if n in METRICS and METRICS[n].task != kind]
        if wrong:
            raise GateConfigError(
                f"metrics {wrong} do not apply to a {kind} model; {kind} metrics: "
                f"{', '.join(metrics_for(kind))}"
            )
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    labels = (s >= 0.5).astype(int)
    out: dict[str, float | None] = {}
    for name in names:
        try:
            if name == "roc_auc":
                value = skm.roc_auc_score(y, s) if len(np.unique(y)) == 2 else None
            elif name == "accuracy":
                value = skm.accuracy_score(y, labels)
            elif name == "f1":
                value = skm.f1_score(y, labels, zero_division=0)
            elif name == "precision":
                value = skm.precision_score(y, labels, zero_division=0)
            elif name == "recall":
                value = skm.recall_score(y, labels, zero_division=0)
            elif name == "log_loss":
                value = skm.log_loss(y, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1])
            elif name == "brier":
                value = skm.brier_score_loss(y, np.clip(s, 0, 1))
            elif name == "r2":
                value = skm.r2_score(y, s)
            elif name == "rmse":
                value = float(np.sqrt(skm.mean_squared_error(y, s)))
            elif name == "mae":
                value = skm.mean_absolute_error(y, s)
            else:
                metric_spec(name, "compute_metrics")
        except ValueError:
            value = None
        out[name] = None if value is None else float(value)
    return out
