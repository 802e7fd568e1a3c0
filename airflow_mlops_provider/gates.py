"""Promotion gates: declared up front, typed, loadable from YAML, evaluated by one piece of code.

A gate is fixed before the result is seen. :class:`PromotionGates` holds every kind:

- :class:`Threshold`: an absolute bound on a metric over the whole evaluation set (``roc_auc >= 0.80``);
- :class:`RegressionGate`: the candidate may not be worse than the champion by more than a tolerance,
  in the metric's own direction (higher is better for ``roc_auc``, lower for ``log_loss``);
- :class:`SliceGate`: thresholds on a named segment of the evaluation data, selected by a small,
  safe filter expression over its columns (``contract == "month-to-month" and tenure < 12``);
- :class:`LatencyBudget`: p50/p95 milliseconds of ``pyfunc.predict`` on a sample batch;
- :class:`EvidenceRequirement`: the candidate run names its data-validation report and training-data
  profile, the files can be read, and the validation did not fail;
- :class:`FairnessGate`: bounds on the disparities between the groups of sensitive columns
  (demographic parity, equalized odds, a metric's gap between groups), computed with Fairlearn
  (:mod:`airflow_mlops_provider.fairness`);
- :class:`OnlineGate`: the challenger, served in shadow, beats the champion on the same live requests
  by a paired test, once enough of them are labelled (evaluated by
  :class:`~airflow_mlops_provider.operators.shadow.OnlineGateOperator`, not by the offline promotion).

Metrics are computed by :func:`compute_metrics`, the one function used for the candidate and the
champion alike. Every check yields a :class:`GateResult` that names the gate, the observed value and
the required one. Standard library at module level; numpy, pandas and scikit-learn are imported inside
the functions that need them.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops_provider.exceptions import GateConfigError

if TYPE_CHECKING:
    import pandas as pd

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


_THRESHOLD_TEXT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Threshold:
    """An absolute bound on a metric: ``Threshold("roc_auc", ">=", 0.80)``.

    :param metric: A name from :data:`METRICS`.
    :param op: One of ``>=``, ``>``, ``<=``, ``<``.
    :param value: The bound.
    """

    metric: str
    op: Operator
    value: float

    def __post_init__(self) -> None:
        metric_spec(self.metric, f"threshold {self}")
        if self.op not in OPERATORS:
            raise GateConfigError(f"threshold on {self.metric!r}: op {self.op!r}; allowed: {list(OPERATORS)}")

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"

    @classmethod
    def parse(cls, item: Any, where: str = "thresholds") -> Threshold:
        """Build from ``"roc_auc >= 0.8"``, ``{metric, min|max}`` or ``{metric, op, value}``."""
        if isinstance(item, Threshold):
            return item
        if isinstance(item, str):
            match = _THRESHOLD_TEXT.match(item)
            if not match:
                raise GateConfigError(
                    f"{where}: {item!r} is not '<metric> <op> <number>' with op one of {list(OPERATORS)}"
                )
            metric, op, value = match.groups()
            return cls(metric, op, _number(value, f"{where}: {item!r}"))  # type: ignore[arg-type]
        _check_keys(item, ("metric", "min", "max", "op", "value"), where)
        if "metric" not in item:
            raise GateConfigError(f"{where}: {dict(item)!r} has no 'metric'")
        forms = [k for k in ("min", "max", "op") if k in item]
        if len(forms) != 1:
            raise GateConfigError(
                f"{where}: threshold on {item['metric']!r} needs exactly one of 'min', 'max' or 'op'+'value'"
            )
        if "min" in item:
            return cls(item["metric"], ">=", _number(item["min"], f"{where}.min"))
        if "max" in item:
            return cls(item["metric"], "<=", _number(item["max"], f"{where}.max"))
        if "value" not in item:
            raise GateConfigError(f"{where}: threshold on {item['metric']!r} has 'op' but no 'value'")
        if item["op"] not in OPERATORS:
            raise GateConfigError(f"{where}.op: {item['op']!r}; allowed: {list(OPERATORS)}")
        return cls(item["metric"], item["op"], _number(item["value"], f"{where}.value"))


@dataclass(frozen=True)
class RegressionGate:
    """The candidate may not be worse than the champion on ``metric`` by more than ``tolerance``.

    :param metric: A name from :data:`METRICS`; its direction decides what "worse" means.
    :param tolerance: Allowed loss, absolute (``0.01`` AUC points) or, with ``relative``, a fraction
        of the champion's value.
    :param relative: Read ``tolerance`` as a fraction.
    """

    metric: str
    tolerance: float = 0.0
    relative: bool = False

    def __post_init__(self) -> None:
        metric_spec(self.metric, "no_regression")
        if self.tolerance < 0:
            raise GateConfigError(
                f"no_regression on {self.metric!r}: tolerance {self.tolerance} is negative, expected >= 0"
            )

    def bound(self, champion_value: float) -> tuple[Operator, float]:
        """Return the operator and value the candidate must meet, given the champion's value."""
        allowance = abs(champion_value) * self.tolerance if self.relative else self.tolerance
        if METRICS[self.metric].higher_is_better:
            return ">=", champion_value - allowance
        return "<=", champion_value + allowance

    @classmethod
    def parse(cls, item: Any, where: str = "no_regression") -> RegressionGate:
        if isinstance(item, RegressionGate):
            return item
        if isinstance(item, str):
            return cls(item)
        _check_keys(item, ("metric", "tolerance", "relative"), where)
        if "metric" not in item:
            raise GateConfigError(f"{where}: {dict(item)!r} has no 'metric'")
        relative = item.get("relative", False)
        if not isinstance(relative, bool):
            raise GateConfigError(f"{where}.relative: {relative!r}; allowed: [true, false]")
        return cls(item["metric"], _number(item.get("tolerance", 0.0), f"{where}.tolerance"), relative)


_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.Compare,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
)


def parse_filter(expression: str, where: str = "filter") -> ast.Expression:
    """Parse a slice filter: comparisons of a column with literals, joined by and/or/not.

    ``contract == "month-to-month"``, ``tenure < 12 and region in ["eu", "us"]``. Nothing else (no
    calls, no attributes, no arithmetic), so a gate file cannot run code.
    """
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as err:
        raise GateConfigError(f"{where}: {expression!r} is not a valid filter: {err.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise GateConfigError(
                f"{where}: {expression!r} uses {type(node).__name__}; allowed: comparisons of a column "
                f"with literals (==, !=, <, <=, >, >=, in, not in) joined by and/or/not"
            )
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if not any(isinstance(o, ast.Name) for o in operands):
                raise GateConfigError(f"{where}: {expression!r}: each comparison must name a column")
    return tree


def filter_mask(tree: ast.Expression, frame: pd.DataFrame, expression: str) -> Any:
    """Return the boolean row mask of ``frame`` selected by a parsed filter."""
    import numpy as np

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Name):
            if node.id not in frame.columns:
                raise KeyError(
                    f"filter {expression!r} names column {node.id!r}, not in the evaluation data "
                    f"(columns: {sorted(map(str, frame.columns))})"
                )
            return frame[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        return ast.literal_eval(node)

    def evaluate(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return evaluate(node.body)
        if isinstance(node, ast.BoolOp):
            parts = [evaluate(v) for v in node.values]
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            result = parts[0]
            for part in parts[1:]:
                result = combine(result, part)
            return result
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return np.logical_not(evaluate(node.operand))
        if isinstance(node, ast.Compare):
            result = np.ones(len(frame), dtype=bool)
            left = value(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = value(right_node)
                if isinstance(op, (ast.In, ast.NotIn)):
                    member = left.isin(list(right)) if hasattr(left, "isin") else left in right
                    part = member if isinstance(op, ast.In) else ~member
                else:
                    part = {
                        ast.Eq: lambda a, b: a == b,
                        ast.NotEq: lambda a, b: a != b,
                        ast.Lt: lambda a, b: a < b,
                        ast.LtE: lambda a, b: a <= b,
                        ast.Gt: lambda a, b: a > b,
                        ast.GtE: lambda a, b: a >= b,
                    }[type(op)](left, right)
                result = np.logical_and(result, np.asarray(part, dtype=bool))
                left = right
            return result
        raise GateConfigError(f"filter {expression!r}: unsupported {type(node).__name__}")

    return np.asarray(evaluate(tree), dtype=bool)


@dataclass(frozen=True)
class SliceGate:
    """Thresholds on a named segment of the evaluation data.

    :param name: The segment's name, used in gate names and messages.
    :param where: Filter over the evaluation data's columns (see :func:`parse_filter`).
    :param thresholds: Bounds the candidate must meet on the segment.
    :param min_rows: Fewer matching rows than this fails the gate (a metric on three rows says little).
    """

    name: str
    where: str
    thresholds: tuple[Threshold, ...]
    min_rows: int = 1

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name or ""):
            raise GateConfigError(f"slice name {self.name!r}: use letters, digits, '_', '.' or '-'")
        parse_filter(self.where, f"slices.{self.name}.where")
        if not self.thresholds:
            raise GateConfigError(f"slices.{self.name}: needs at least one threshold")
        if self.min_rows < 1:
            raise GateConfigError(f"slices.{self.name}.min_rows: {self.min_rows}, expected >= 1")

    @classmethod
    def parse(cls, item: Any, where: str = "slices") -> SliceGate:
        if isinstance(item, SliceGate):
            return item
        _check_keys(item, ("name", "where", "thresholds", "min_rows"), where)
        for key in ("name", "where", "thresholds"):
            if key not in item:
                raise GateConfigError(f"{where}: {dict(item)!r} has no {key!r}")
        name = str(item["name"])
        thresholds = item["thresholds"]
        if isinstance(thresholds, (str, Mapping)):
            thresholds = [thresholds]
        min_rows = item.get("min_rows", 1)
        if isinstance(min_rows, bool) or not isinstance(min_rows, int):
            raise GateConfigError(f"slices.{name}.min_rows: {min_rows!r}, expected a whole number")
        return cls(
            name=name,
            where=str(item["where"]),
            thresholds=tuple(
                Threshold.parse(t, f"slices.{name}.thresholds[{i}]") for i, t in enumerate(thresholds)
            ),
            min_rows=min_rows,
        )


@dataclass(frozen=True)
class LatencyBudget:
    """A budget for ``pyfunc.predict`` on a batch of the first ``sample_rows`` evaluation rows.

    :param p50_ms: Median milliseconds per batch allowed.
    :param p95_ms: 95th-percentile milliseconds per batch allowed.
    :param sample_rows: Rows per batch.
    :param repeats: Timed calls.
    :param warmup: Untimed calls first (lazy imports and caches).
    """

    p50_ms: float | None = None
    p95_ms: float | None = None
    sample_rows: int = 100
    repeats: int = 20
    warmup: int = 2

    def __post_init__(self) -> None:
        if self.p50_ms is None and self.p95_ms is None:
            raise GateConfigError("latency: set p50_ms, p95_ms or both")
        for key in ("p50_ms", "p95_ms"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise GateConfigError(f"latency.{key}: {value}, expected > 0")
        for key, low in (("sample_rows", 1), ("repeats", 1), ("warmup", 0)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise GateConfigError(f"latency.{key}: {value!r}, expected a whole number >= {low}")

    @classmethod
    def parse(cls, item: Any, where: str = "latency") -> LatencyBudget:
        if isinstance(item, LatencyBudget):
            return item
        _check_keys(item, ("p50_ms", "p95_ms", "sample_rows", "repeats", "warmup"), where)
        kwargs: dict[str, Any] = dict(item)
        for key in ("p50_ms", "p95_ms"):
            if kwargs.get(key) is not None:
                kwargs[key] = _number(kwargs[key], f"{where}.{key}")
        return cls(**kwargs)


@dataclass(frozen=True)
class EvidenceRequirement:
    """Evidence the candidate's training run must carry (tags from :mod:`airflow_mlops_provider.lineage`).

    :param validation_report: Require ``mlops.evidence.validation_report_uri``.
    :param training_profile: Require ``mlops.evidence.training_profile_uri``.
    :param validation_status: Require ``mlops.evidence.validation_status`` to be present.
    :param failed_statuses: Validation statuses that refuse the candidate.
    :param check_readable: Open each referenced file (local path, ``file:``, or an MLflow artifact).
    """

    validation_report: bool = True
    training_profile: bool = True
    validation_status: bool = True
    failed_statuses: tuple[str, ...] = ("failed", "error")
    check_readable: bool = True

    @classmethod
    def parse(cls, item: Any, where: str = "evidence") -> EvidenceRequirement:
        if isinstance(item, EvidenceRequirement):
            return item
        if item is False or item is None:
            return cls(False, False, False, (), False)
        if item is True:
            return cls()
        allowed = ("validation_report", "training_profile", "validation_status", "failed_statuses")
        _check_keys(item, (*allowed, "check_readable"), where)
        kwargs: dict[str, Any] = {}
        for key, value in item.items():
            if key == "failed_statuses":
                if isinstance(value, str) or not isinstance(value, Sequence):
                    raise GateConfigError(f"{where}.failed_statuses: {value!r}, expected a list of strings")
                kwargs[key] = tuple(str(v).lower() for v in value)
            elif not isinstance(value, bool):
                raise GateConfigError(f"{where}.{key}: {value!r}; allowed: [true, false]")
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @property
    def enabled(self) -> bool:
        return self.validation_report or self.training_profile or self.validation_status


@dataclass(frozen=True)
class FairnessGate:
    """Disparities between the groups of one or more sensitive columns, bounded up front.

    The sensitive columns must be in the evaluation data; they need not be model features (pass
    ``feature_columns`` to the promotion when they are not). Groups with fewer than
    ``min_group_rows`` rows are reported, not gated, unless ``gate_small_groups``.

    :param name: Used in gate names and messages.
    :param sensitive: The sensitive columns; every combination of their values is a group.
    :param max_demographic_parity_difference: Largest difference in selection rate (share predicted
        positive) between two groups.
    :param min_demographic_parity_ratio: Smallest ratio of the lowest to the highest selection rate.
    :param max_equalized_odds_difference: Largest difference in true or false positive rate.
    :param metrics: Gate metrics computed per group (reported; bounded by ``max_metric_difference``).
    :param max_metric_difference: Largest difference of each of ``metrics`` between two groups.
    :param min_group_rows: Groups smaller than this are reported but not gated.
    :param gate_small_groups: Gate every group, however small.
    """

    name: str
    sensitive: tuple[str, ...]
    max_demographic_parity_difference: float | None = None
    min_demographic_parity_ratio: float | None = None
    max_equalized_odds_difference: float | None = None
    metrics: tuple[str, ...] = ()
    max_metric_difference: float | None = None
    min_group_rows: int = 30
    gate_small_groups: bool = False

    #: The bounds on classification labels (``score >= 0.5``).
    LABEL_BOUNDS = (
        "max_demographic_parity_difference",
        "min_demographic_parity_ratio",
        "max_equalized_odds_difference",
    )

    def __post_init__(self) -> None:
        where = f"fairness.{self.name}"
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name or ""):
            raise GateConfigError(f"fairness name {self.name!r}: use letters, digits, '_', '.' or '-'")
        if not self.sensitive:
            raise GateConfigError(f"{where}.sensitive: name at least one column")
        for metric in self.metrics:
            metric_spec(metric, f"{where}.metrics")
        bounds = [*self.LABEL_BOUNDS, "max_metric_difference"]
        if all(getattr(self, b) is None for b in bounds):
            raise GateConfigError(f"{where}: set at least one of {bounds}")
        if self.max_metric_difference is not None and not self.metrics:
            raise GateConfigError(f"{where}.max_metric_difference: name the metrics it bounds")
        for bound in bounds:
            value = getattr(self, bound)
            if value is not None and not 0 <= value <= 1 and bound != "max_metric_difference":
                raise GateConfigError(f"{where}.{bound}: {value!r}, expected a number between 0 and 1")
            if value is not None and value < 0:
                raise GateConfigError(f"{where}.{bound}: {value!r}, expected >= 0")
        if (
            isinstance(self.min_group_rows, bool)
            or not isinstance(self.min_group_rows, int)
            or self.min_group_rows < 1
        ):
            raise GateConfigError(
                f"{where}.min_group_rows: {self.min_group_rows!r}, expected a whole number >= 1"
            )

    @property
    def labels_bounded(self) -> bool:
        """Whether a bound reads classification labels (so the model must be a classifier)."""
        return any(getattr(self, b) is not None for b in self.LABEL_BOUNDS)

    @classmethod
    def parse(cls, item: Any, where: str = "fairness") -> FairnessGate:
        if isinstance(item, FairnessGate):
            return item
        keys = [f.name for f in fields(cls)]
        _check_keys(item, keys, where)
        for key in ("name", "sensitive"):
            if key not in item:
                raise GateConfigError(f"{where}: {dict(item)!r} has no {key!r}")
        kwargs: dict[str, Any] = dict(item)
        for key in ("sensitive", "metrics"):
            value = kwargs.get(key, ())
            kwargs[key] = (value,) if isinstance(value, str) else tuple(str(v) for v in value)
        for key in (*cls.LABEL_BOUNDS, "max_metric_difference"):
            if kwargs.get(key) is not None:
                kwargs[key] = _number(kwargs[key], f"{where}.{key}")
        if not isinstance(kwargs.get("gate_small_groups", False), bool):
            raise GateConfigError(
                f"{where}.gate_small_groups: {kwargs['gate_small_groups']!r}; allowed: [true, false]"
            )
        kwargs["name"] = str(kwargs["name"])
        return cls(**kwargs)


#: Paired tests of :class:`OnlineGate`, and the metrics each suits (``bootstrap``: every metric).
ONLINE_TESTS = {"mcnemar": ("accuracy",), "delong": ("roc_auc",), "bootstrap": tuple(METRICS)}


@dataclass(frozen=True)
class OnlineGate:
    """The challenger must beat the champion on the same live requests, by a paired test.

    Judged once, when ``min_pairs`` requests scored by both models have labels: the challenger passes
    when the one-sided test of "better by more than ``min_effect``" has a p-value below ``alpha``;
    otherwise it is rejected (worse, equal, or not better by enough). Fewer pairs than ``min_pairs``
    after ``max_wait_hours`` is ``insufficient``, which refuses the challenger too.

    :param metric: A metric of :data:`METRICS`.
    :param min_pairs: Labelled requests both models scored, needed before judging.
    :param min_effect: How much better (in the metric's units and direction) the challenger must be.
    :param alpha: Significance level of the one-sided test.
    :param test: ``auto`` (McNemar's exact test for ``accuracy``, DeLong's for ``roc_auc``, a paired
        bootstrap otherwise), or ``mcnemar``, ``delong``, ``bootstrap``.
    :param bootstrap: Resamples of the paired bootstrap.
    :param max_wait_hours: How long the operator waits for ``min_pairs`` from the shadow's start.
    """

    metric: str
    min_pairs: int = 500
    min_effect: float = 0.0
    alpha: float = 0.05
    test: str = "auto"
    bootstrap: int = 1000
    max_wait_hours: float = 168.0

    def __post_init__(self) -> None:
        metric_spec(self.metric, "online.metric")
        if isinstance(self.min_pairs, bool) or not isinstance(self.min_pairs, int) or self.min_pairs < 10:
            raise GateConfigError(f"online.min_pairs: {self.min_pairs!r}, expected a whole number >= 10")
        if not 0 < self.alpha < 0.5:
            raise GateConfigError(f"online.alpha: {self.alpha!r}, expected 0 < alpha < 0.5")
        if self.min_effect < 0:
            raise GateConfigError(f"online.min_effect: {self.min_effect!r}, expected >= 0")
        if self.max_wait_hours <= 0:
            raise GateConfigError(f"online.max_wait_hours: {self.max_wait_hours!r}, expected > 0")
        if isinstance(self.bootstrap, bool) or not isinstance(self.bootstrap, int) or self.bootstrap < 100:
            raise GateConfigError(f"online.bootstrap: {self.bootstrap!r}, expected a whole number >= 100")
        if self.test != "auto":
            if self.test not in ONLINE_TESTS:
                raise GateConfigError(f"online.test: {self.test!r}; allowed: {['auto', *ONLINE_TESTS]}")
            if self.metric not in ONLINE_TESTS[self.test]:
                raise GateConfigError(
                    f"online.test: {self.test!r} compares {list(ONLINE_TESTS[self.test])}, not "
                    f"{self.metric!r}; use bootstrap or auto"
                )

    @property
    def resolved_test(self) -> str:
        """The test used: ``test``, or the one ``auto`` picks for the metric."""
        if self.test != "auto":
            return self.test
        return {"accuracy": "mcnemar", "roc_auc": "delong"}.get(self.metric, "bootstrap")

    @classmethod
    def parse(cls, item: Any, where: str = "online") -> OnlineGate:
        if isinstance(item, OnlineGate):
            return item
        keys = ("metric", "min_pairs", "min_effect", "alpha", "test", "bootstrap", "max_wait_hours")
        _check_keys(item, keys, where)
        if "metric" not in item:
            raise GateConfigError(f"{where}: {dict(item)!r} has no 'metric'")
        kwargs: dict[str, Any] = dict(item)
        for key in ("min_effect", "alpha", "max_wait_hours"):
            if key in kwargs:
                kwargs[key] = _number(kwargs[key], f"{where}.{key}")
        kwargs["metric"], kwargs["test"] = str(kwargs["metric"]), str(kwargs.get("test", "auto"))
        return cls(**kwargs)


_TOP_KEYS = ("thresholds", "no_regression", "slices", "latency", "evidence", "fairness", "online")


def yaml_mapping(source: str | Path, what: str, keys: Sequence[str]) -> Mapping[str, Any]:
    """Parse YAML text, or a ``.yaml``/``.yml`` file path, that must be a mapping of ``keys``."""
    import yaml

    text = str(source)
    if isinstance(source, Path) or (text.endswith((".yaml", ".yml")) and "\n" not in text):
        text = Path(source).read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise GateConfigError(f"{what} YAML does not parse: {err}") from None
    if not isinstance(data, Mapping):
        raise GateConfigError(f"{what} YAML must be a mapping with keys {list(keys)}")
    return data


@dataclass(frozen=True)
class PromotionGates:
    """Every gate a candidate must pass, declared before evaluation.

    :param thresholds: Absolute bounds on whole-set metrics.
    :param no_regression: Bounds relative to the champion; skipped when there is no champion.
    :param slices: Thresholds on named segments.
    :param latency: Prediction-latency budget, or ``None``.
    :param evidence: Required evidence on the candidate run.
    :param fairness: Bounds on disparities between groups of sensitive columns.
    :param online: The paired comparison on live traffic, or ``None``.
    """

    thresholds: tuple[Threshold, ...] = ()
    no_regression: tuple[RegressionGate, ...] = ()
    slices: tuple[SliceGate, ...] = ()
    latency: LatencyBudget | None = None
    evidence: EvidenceRequirement = field(default_factory=EvidenceRequirement)
    fairness: tuple[FairnessGate, ...] = ()
    online: OnlineGate | None = None

    def __post_init__(self) -> None:
        for what, names in (
            ("slices", [s.name for s in self.slices]),
            ("fairness", [f.name for f in self.fairness]),
        ):
            if len(names) != len(set(names)):
                raise GateConfigError(f"{what}: names must be unique, got {names}")
        tasks = {METRICS[m].task for m in self.metrics}
        if len(tasks) > 1:
            by_kind = {k: [m for m in self.metrics if METRICS[m].task == k] for k in sorted(tasks)}
            raise GateConfigError(
                f"gates mix classification and regression metrics ({by_kind}); a model is one kind: "
                f"{_known_metrics()}"
            )
        if not (
            self.thresholds
            or self.no_regression
            or self.slices
            or self.latency
            or self.fairness
            or self.online
        ):
            raise GateConfigError(
                "no gates declared: give at least one of thresholds, no_regression, slices, latency, "
                "fairness or online"
            )

    @property
    def metrics(self) -> list[str]:
        """Every metric some gate reads, in a stable order."""
        return sorted({metric for _, metric in self._metric_gates()})

    def _metric_gates(self) -> list[tuple[str, str]]:
        """Each gate that reads a metric, as ``(how it was declared, metric)``."""
        gates = [(f"thresholds: {t}", t.metric) for t in self.thresholds]
        gates += [(f"no_regression: {r.metric}", r.metric) for r in self.no_regression]
        gates += [(f"slices.{s.name}: {t}", t.metric) for s in self.slices for t in s.thresholds]
        gates += [(f"fairness.{f.name}: {m}", m) for f in self.fairness for m in f.metrics]
        if self.online is not None:
            gates.append((f"online: {self.online.metric}", self.online.metric))
        return gates

    @property
    def kind(self) -> ModelKind | None:
        """The kind of model these gates judge, from their metrics; ``None`` for latency alone."""
        kinds = {METRICS[m].task for m in self.metrics}
        return kinds.pop() if kinds else None

    def check_kind(self, kind: str, source: str = "") -> None:
        """Raise :class:`GateConfigError` unless every metric gate suits a model of ``kind``.

        :param source: Where the kind came from, for the message (``"the training run's tag"``).
        """
        check_model_kind(kind)
        said = f" ({source})" if source else ""
        for gate in self.fairness:
            if kind == "regression" and gate.labels_bounded:
                raise GateConfigError(
                    f"fairness.{gate.name} bounds demographic parity or equalized odds, which judge "
                    f"classification labels, but the model is a regression model{said}; bound "
                    f"max_metric_difference of a regression metric instead"
                )
        for declared, metric in self._metric_gates():
            task = METRICS[metric].task
            if task != kind:
                said = f" ({source})" if source else ""
                raise GateConfigError(
                    f"gate {declared!r} reads {metric!r}, a {task} metric, but the model is a {kind} "
                    f"model{said}; {kind} metrics: {', '.join(metrics_for(kind))}"
                )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromotionGates:
        """Build from a mapping with keys ``thresholds``, ``no_regression``, ``slices``, ``latency``,
        ``evidence``, ``online`` (the YAML layout)."""
        _check_keys(data, _TOP_KEYS, "gates")

        def items(key: str) -> list[Any]:
            value = data.get(key) or []
            if isinstance(value, (str, Mapping)):
                value = [value]
            if not isinstance(value, Sequence):
                raise GateConfigError(f"gates.{key}: expected a list, got {value!r}")
            return list(value)

        latency = data.get("latency")
        online = data.get("online")
        return cls(
            thresholds=tuple(
                Threshold.parse(t, f"thresholds[{i}]") for i, t in enumerate(items("thresholds"))
            ),
            no_regression=tuple(
                RegressionGate.parse(r, f"no_regression[{i}]") for i, r in enumerate(items("no_regression"))
            ),
            slices=tuple(SliceGate.parse(s, f"slices[{i}]") for i, s in enumerate(items("slices"))),
            latency=LatencyBudget.parse(latency) if latency is not None else None,
            evidence=EvidenceRequirement.parse(data.get("evidence", True)),
            fairness=tuple(FairnessGate.parse(f, f"fairness[{i}]") for i, f in enumerate(items("fairness"))),
            online=OnlineGate.parse(online) if online is not None else None,
        )

    @classmethod
    def from_yaml(cls, source: str | Path) -> PromotionGates:
        """Build from YAML text, or from a ``.yaml``/``.yml`` file path."""
        return cls.from_dict(yaml_mapping(source, "gates", _TOP_KEYS))

    @classmethod
    def coerce(cls, value: PromotionGates | Mapping[str, Any] | str | Path) -> PromotionGates:
        """Accept gates as an instance, a mapping, YAML text or a YAML file path."""
        if isinstance(value, PromotionGates):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        if isinstance(value, (str, Path)):
            return cls.from_yaml(value)
        raise GateConfigError(
            f"gates: {type(value).__name__} given; expected PromotionGates, a mapping or YAML"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-friendly form :meth:`from_dict` reads back."""
        return {
            "thresholds": [str(t) for t in self.thresholds],
            "no_regression": [asdict(r) for r in self.no_regression],
            "slices": [
                {
                    "name": s.name,
                    "where": s.where,
                    "thresholds": [str(t) for t in s.thresholds],
                    "min_rows": s.min_rows,
                }
                for s in self.slices
            ],
            "latency": asdict(self.latency) if self.latency else None,
            "evidence": {**asdict(self.evidence), "failed_statuses": list(self.evidence.failed_statuses)},
            "fairness": [
                {**asdict(f), "sensitive": list(f.sensitive), "metrics": list(f.metrics)}
                for f in self.fairness
            ],
            "online": asdict(self.online) if self.online else None,
        }


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
