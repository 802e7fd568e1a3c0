"""Each gate as declared: thresholds, regression, slices, latency, evidence, fairness, online (PromotionGates holds them)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from airflow_mlops_provider.exceptions import GateConfigError
from airflow_mlops_provider.gates.filters import parse_filter
from airflow_mlops_provider.gates.metrics import (
    METRICS,
    OPERATORS,
    Operator,
    _check_keys,
    _number,
    metric_spec,
)

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
