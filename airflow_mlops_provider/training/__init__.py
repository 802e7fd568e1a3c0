"""The in-pod training runner and the contract between it and the user's training code.

``python -m airflow_mlops_provider.training --entrypoint pkg.module:function ...`` loads the user's
entrypoint, reads the training and evaluation data into DataFrames, calls the entrypoint with a
:class:`TrainingInput`, evaluates what it returns on the held-out data and logs everything to the
MLflow run named by ``MLFLOW_RUN_ID`` (which ``MLflowTrainingOperator`` created before the pod or
subprocess started).

The entrypoint contract::

    def train(data: TrainingInput) -> Model | TrainingResult: ...

- ``data.train`` / ``data.eval`` are pandas DataFrames that still hold the target column;
  ``data.features(frame)`` and ``data.labels(frame)`` split one.
- ``data.params`` is the JSON object given as ``--params``; ``data.seed`` must seed every source of
  randomness the entrypoint uses (the runner seeds ``random`` and NumPy's global generator itself).
- ``data.gpu`` says whether the process sees a GPU; an entrypoint that can use one should, and
  must fall back to the CPU otherwise.
- It returns a fitted scikit-learn-compatible model (``predict``, and ``predict_proba`` for a
  classifier), or a :class:`TrainingResult` carrying that model plus extra metrics and params, and
  the columns in which the model accepts missing values.

This subpackage imports nothing from Airflow: it runs inside the trainer image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class TrainingInput:
    """What the runner hands the entrypoint.

    :param train: Training data, target column included.
    :param eval: Held-out evaluation data, target column included.
    :param target: Name of the target column.
    :param params: Hyper-parameters (the ``--params`` JSON object).
    :param seed: Seed for every source of randomness.
    :param gpu: Whether a GPU is visible to this process.
    """

    train: pd.DataFrame
    eval: pd.DataFrame
    target: str
    params: dict[str, Any]
    seed: int
    gpu: bool = False

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return ``frame`` without the target column."""
        return frame.drop(columns=[self.target])

    def labels(self, frame: pd.DataFrame) -> pd.Series:
        """Return the target column of ``frame``."""
        return frame[self.target]


@dataclass
class TrainingResult:
    """What an entrypoint may return instead of a bare model.

    :param model: The fitted, scikit-learn-compatible model (logged with the ``sklearn`` flavour).
    :param metrics: Extra metrics to log (the runner adds the held-out evaluation itself).
    :param params: Extra params to log, e.g. values the entrypoint derived.
    :param optional_columns: Feature columns in which the model handles missing values (its pipeline
        imputes them) although the training data had none there. The logged signature marks them
        optional, so the served model accepts ``null`` in them. Columns with nulls in the training
        or evaluation data are marked so without being named here.
    """

    model: Any
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    optional_columns: list[str] = field(default_factory=list)


__all__ = ["TrainingInput", "TrainingResult"]
