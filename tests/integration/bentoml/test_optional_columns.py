"""Nulls at serving time: a model the runner trained on data with nulls, packaged and served for real.

The training data has nulls in ``tenure`` (an integer column when complete) and ``contract`` (a string
column), the evaluation data in ``contract`` only, so the smoke test sends nulls. The runner marks
both columns optional, and the Bento passes a null there to the imputing pipeline as NaN.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlops_demo.churn import FEATURES, TARGET, generate_week
from tests.integration.bentoml.conftest import make_context

pytestmark = pytest.mark.integration

#: Columns with nulls in the training data; the rest of FEATURES have none anywhere.
WITH_NULLS = ("tenure", "contract")


@pytest.fixture(scope="module")
def eval_frame() -> Any:
    import numpy as np

    frame = generate_week(rows=60, seed=2, week=2)[[*FEATURES, TARGET]]
    frame.loc[np.arange(len(frame)) % 4 == 1, "contract"] = np.nan
    return frame


@pytest.fixture(scope="module")
def trained_with_nulls(
    mlflow_server: Any, _mlflow_default: None, eval_frame: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Train ``train_sklearn`` with the runner on churn data with nulls, and register the model."""
    import uuid

    import mlflow
    import numpy as np

    from airflow_mlops_provider.training.runner import RunnerConfig, run

    frame = generate_week(rows=1_500, seed=1)[[*FEATURES, TARGET]]
    rng = np.random.default_rng(7)
    for column in WITH_NULLS:
        frame.loc[rng.random(len(frame)) < 0.2, column] = np.nan
    root = tmp_path_factory.mktemp("optional-columns")
    frame.to_parquet(root / "train.parquet", index=False)
    eval_frame.to_csv(root / "eval.csv", index=False)

    name = f"churn-nulls-{uuid.uuid4().hex[:6]}"
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_experiment(name)
    model_uri = run(
        RunnerConfig(
            entrypoint="airflow_mlops_provider.training.examples:train_sklearn",
            train_uri=str(root / "train.parquet"),
            eval_uri=str(root / "eval.csv"),
            target=TARGET,
            params={"n_estimators": 30},
        )
    )
    version = str(mlflow.register_model(model_uri, name).version)
    return {"name": name, "version": version, "eval_csv": root / "eval.csv"}


@pytest.fixture(scope="module")
def packaged(
    trained_with_nulls: dict[str, Any], bentoml_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Package the model with its smoke test; the conftest's ``served`` serves this Bento."""
    from airflow_mlops_provider.operators.bentoml import BentoPackageOperator

    return BentoPackageOperator(
        task_id="package",
        model_name=trained_with_nulls["name"],
        version=trained_with_nulls["version"],
        eval_data_uri=str(trained_with_nulls["eval_csv"]),
        export_uri=str(tmp_path_factory.mktemp("bentos")),
        max_batch_size=16,
    ).execute(make_context())


def rows_of(frame: Any, n: int) -> list[dict[str, Any]]:
    return json.loads(frame[FEATURES].head(n).to_json(orient="records"))


def test_runner_marks_the_columns_with_nulls_optional(trained_with_nulls: dict[str, Any]) -> None:
    from mlflow.models import get_model_info

    uri = f"models:/{trained_with_nulls['name']}/{trained_with_nulls['version']}"
    columns = {c["name"]: c for c in get_model_info(uri).signature.inputs.to_dict()}
    assert {name for name, c in columns.items() if not c["required"]} == set(WITH_NULLS)
    # Complete in the evaluation data, tenure would be inferred long; optional, it is declared double.
    assert columns["tenure"]["type"] == "double"
    assert columns["contract"]["type"] == "string"


def test_smoke_test_passes_with_nulls_in_the_sample(packaged: dict[str, Any], eval_frame: Any) -> None:
    assert eval_frame["contract"].head(32).isna().sum() == 8
    assert packaged["smoke_test"]["status"] == "passed"
    assert packaged["smoke_test"]["rows"] == 32


def test_served_bento_predicts_for_nulls_in_optional_columns(
    served: str, trained_with_nulls: dict[str, Any], eval_frame: Any
) -> None:
    """Null or left out, the Bento answers what the scikit-learn pipeline itself says for NaN there."""
    import mlflow.sklearn
    import numpy as np

    frame = eval_frame[FEATURES].dropna().head(4).reset_index(drop=True).astype({"tenure": float})
    frame.loc[0, "tenure"] = np.nan
    frame.loc[1, "contract"] = np.nan
    frame.loc[2, list(WITH_NULLS)] = np.nan
    rows = json.loads(frame.to_json(orient="records"))
    assert rows[0]["tenure"] is None
    assert rows[1]["contract"] is None
    rows[2] = {k: v for k, v in rows[2].items() if k not in WITH_NULLS}
    pipeline = mlflow.sklearn.load_model(
        f"models:/{trained_with_nulls['name']}/{trained_with_nulls['version']}"
    )
    expected = pipeline.predict(frame).tolist()
    for batch, want in ((rows, expected), (rows[2:3], expected[2:3])):
        response = httpx.post(f"{served}/predict", json={"rows": batch}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json() == want


@pytest.mark.parametrize("field", ["monthly_charges", "support_calls", "payment_method"])
def test_served_bento_refuses_null_in_a_required_column_naming_it(
    served: str, eval_frame: Any, field: str
) -> None:
    rows = rows_of(eval_frame.dropna(), 2)
    rows[1][field] = None
    response = httpx.post(f"{served}/predict", json={"rows": rows}, timeout=30)
    assert response.status_code == 400, response.text
    locations = [[str(part) for part in error["loc"]] for error in response.json()["detail"]]
    assert any(field in loc for loc in locations), locations
