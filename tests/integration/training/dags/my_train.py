"""The entrypoint of ``entrypoint_beside_dag``: importable only because it is beside the DAG file."""

from __future__ import annotations

from typing import Any

from airflow_mlops_provider.training import TrainingInput, TrainingResult


def train(data: TrainingInput) -> TrainingResult:
    """Fit gradient boosting with the params exactly as they arrived (scikit-learn refuses text)."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline

    from airflow_mlops_provider.training.examples import preprocessor

    features = data.features(data.train)
    model = make_pipeline(
        preprocessor(features),
        GradientBoostingClassifier(
            n_estimators=data.params["n_estimators"],
            learning_rate=data.params["learning_rate"],
            warm_start=data.params["warm_start"],
            random_state=data.seed,
        ),
    )
    arrived: dict[str, Any] = {f"{k}_type": type(v).__name__ for k, v in data.params.items()}
    return TrainingResult(model=model.fit(features, data.labels(data.train)), params=arrived)
