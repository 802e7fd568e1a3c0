"""Reference entrypoints for ``python -m airflow_mlops_provider.training``.

- ``airflow_mlops_provider.training.examples:train_sklearn``: a scikit-learn pipeline (imputation,
  scaling and one-hot encoding for numeric and categorical columns, then gradient boosting).
- ``airflow_mlops_provider.training.examples:train_xgboost``: the same preprocessing with XGBoost,
  on the GPU (``device="cuda"``) when the process sees one, on the CPU otherwise. Needs the ``gpu``
  extra (CUDA build) or ``xgboost-cpu``. Class labels must be integers ``0..k-1``.

Both are deterministic for a fixed seed. Params (all optional): ``n_estimators``, ``learning_rate``,
``max_depth``, ``subsample``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.training import TrainingInput, TrainingResult

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.compose import ColumnTransformer


def preprocessor(features: pd.DataFrame) -> ColumnTransformer:
    """Return a transformer for ``features``: numeric columns imputed and scaled, the rest one-hot encoded."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in features.columns if features[c].dtype.kind in "biuf"]
    categorical = [c for c in features.columns if c not in numeric]
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            ),
        ]
    )


def train_sklearn(data: TrainingInput) -> Any:
    """Fit a gradient-boosted classifier (or regressor, for a float target) in a preprocessing pipeline."""
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    features, labels = data.features(data.train), data.labels(data.train)
    params = {
        "n_estimators": int(data.params.get("n_estimators", 100)),
        "learning_rate": float(data.params.get("learning_rate", 0.1)),
        "max_depth": int(data.params.get("max_depth", 3)),
        # Below 1, each tree sees a random subsample: the seed then changes the model.
        "subsample": float(data.params.get("subsample", 0.8)),
        "random_state": data.seed,
    }
    estimator = (
        GradientBoostingRegressor(**params)
        if labels.dtype.kind == "f"
        else GradientBoostingClassifier(**params)
    )
    model = Pipeline([("preprocess", preprocessor(features)), ("model", estimator)])
    return model.fit(features, labels)


def train_xgboost(data: TrainingInput) -> TrainingResult:
    """Fit an XGBoost classifier on the GPU when there is one, else on the CPU."""
    from sklearn.pipeline import Pipeline
    from xgboost import XGBClassifier

    features, labels = data.features(data.train), data.labels(data.train)
    device = "cuda" if data.gpu else "cpu"
    classifier = XGBClassifier(
        n_estimators=int(data.params.get("n_estimators", 200)),
        learning_rate=float(data.params.get("learning_rate", 0.1)),
        max_depth=int(data.params.get("max_depth", 6)),
        subsample=float(data.params.get("subsample", 0.8)),
        tree_method="hist",
        device=device,
        random_state=data.seed,
    )
    model = Pipeline([("preprocess", preprocessor(features)), ("model", classifier)])
    model.fit(features, labels)
    # Served models run on CPUs: predicting with a CUDA-bound booster there would warn or fail.
    classifier.set_params(device="cpu")
    return TrainingResult(model=model, params={"device": device})
