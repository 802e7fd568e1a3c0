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
the functions that need them. One module per job: :mod:`.declarations` (each gate),
:mod:`.promotion_gates` (:class:`PromotionGates`, read from YAML), :mod:`.filters` (the slice filter
language), :mod:`.metrics` (metric specs and :func:`compute_metrics`), :mod:`.evaluation`
(:func:`apply_gates` and its results).
"""

from __future__ import annotations

from airflow_mlops_provider.gates.declarations import (
    ONLINE_TESTS,
    EvidenceRequirement,
    FairnessGate,
    LatencyBudget,
    OnlineGate,
    RegressionGate,
    SliceGate,
    Threshold,
)
from airflow_mlops_provider.gates.evaluation import (
    GateResult,
    apply_gates,
    bound_result,
    evaluate_frame,
)
from airflow_mlops_provider.gates.filters import (
    filter_mask,
    parse_filter,
)
from airflow_mlops_provider.gates.metrics import (
    METRICS,
    MODEL_KINDS,
    OPERATORS,
    GateStatus,
    MetricSpec,
    ModelKind,
    Operator,
    check_model_kind,
    compute_metrics,
    kind_mismatch,
    metric_spec,
    metrics_for,
    scores_from_output,
)
from airflow_mlops_provider.gates.promotion_gates import PromotionGates, YamlDeclared, yaml_mapping

__all__ = [
    "METRICS",
    "MODEL_KINDS",
    "ONLINE_TESTS",
    "OPERATORS",
    "EvidenceRequirement",
    "FairnessGate",
    "GateResult",
    "GateStatus",
    "LatencyBudget",
    "MetricSpec",
    "ModelKind",
    "OnlineGate",
    "Operator",
    "PromotionGates",
    "RegressionGate",
    "SliceGate",
    "Threshold",
    "YamlDeclared",
    "apply_gates",
    "bound_result",
    "check_model_kind",
    "compute_metrics",
    "evaluate_frame",
    "filter_mask",
    "kind_mismatch",
    "metric_spec",
    "metrics_for",
    "parse_filter",
    "scores_from_output",
    "yaml_mapping",
]
