"""The training entrypoint of the diabetes example: lives beside its DAG file.

The local runtime puts the DAG file's folder on the training process's import path, so
``entrypoint="diabetes_train:train"`` finds this module. For ``runtime="kubernetes"`` the module
must be installed in the trainer image instead.
"""

from __future__ import annotations

# [START diabetes_entrypoint]
from typing import Any

from airflow_mlops_provider.training import TrainingInput


def train(data: TrainingInput) -> Any:
    """Ridge regression on the imputed, scaled features: the target is a float, so a regressor."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        SimpleImputer(strategy="median"),
        StandardScaler(),
        Ridge(alpha=float(data.params.get("alpha", 1.0)), random_state=data.seed),
    )
    return model.fit(data.features(data.train), data.labels(data.train))


# [END diabetes_entrypoint]
