"""The set of gates a candidate must pass (PromotionGates), and declarations read from YAML or a mapping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from airflow_mlops_provider.exceptions import GateConfigError
from airflow_mlops_provider.gates.declarations import (
    EvidenceRequirement,
    FairnessGate,
    LatencyBudget,
    OnlineGate,
    RegressionGate,
    SliceGate,
    Threshold,
)
from airflow_mlops_provider.gates.metrics import (
    METRICS,
    ModelKind,
    _check_keys,
    _known_metrics,
    check_model_kind,
    kind_mismatch,
)

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


_Declared = TypeVar("_Declared", bound="YamlDeclared")


class YamlDeclared:
    """A declaration read from YAML (text or a file path) or a mapping in the same layout.

    A subclass gives ``from_dict`` and names itself: ``_yaml_name`` in errors about the value given,
    ``_yaml_what`` in errors about its YAML, ``_yaml_keys`` for the keys a mapping may hold.
    """

    _yaml_name: ClassVar[str]
    _yaml_what: ClassVar[str]
    _yaml_keys: ClassVar[Sequence[str]]

    @classmethod
    def from_dict(cls: type[_Declared], data: Mapping[str, Any]) -> _Declared:
        raise NotImplementedError

    @classmethod
    def from_yaml(cls: type[_Declared], source: str | Path) -> _Declared:
        """Build from YAML text, or from a ``.yaml``/``.yml`` file path."""
        return cls.from_dict(yaml_mapping(source, cls._yaml_what, cls._yaml_keys))

    @classmethod
    def coerce(cls: type[_Declared], value: Any) -> _Declared:
        """Accept an instance, a mapping, YAML text or a YAML file path."""
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        if isinstance(value, (str, Path)):
            return cls.from_yaml(value)
        raise GateConfigError(
            f"{cls._yaml_name}: {type(value).__name__} given; expected {cls.__name__}, a mapping or YAML"
        )


@dataclass(frozen=True)
class PromotionGates(YamlDeclared):
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

    _yaml_name = "gates"
    _yaml_what = "gates"
    _yaml_keys = _TOP_KEYS

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
                raise kind_mismatch(f"gate {declared!r} reads {metric!r}, a {task} metric", kind, source)

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
