"""Reproducing a version from its lineage: the runner's run on the real MLflow server, trained again."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops_provider import lineage
from airflow_mlops_provider.reproduction import (
    EXIT_IDENTICAL,
    EXIT_REFUSED,
    ReproductionRefused,
    compare_predictions,
    main,
    reproduce,
)

pytestmark = pytest.mark.timeout(600)

ENTRYPOINT = "airflow_mlops_provider.training.examples:train_sklearn"


@pytest.fixture(scope="module")
def trained_version(mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train with the runner (as a training task does), log to the server, register version 1."""
    import mlflow

    from airflow_mlops_provider.training.runner import RunnerConfig, run
    from mlops_demo.churn import generate_week

    data = tmp_path_factory.mktemp("data")
    train, evaluation = data / "train.csv", data / "eval.csv"
    generate_week(rows=1500, seed=3).drop(columns=["customer_id"]).to_csv(train, index=False)
    generate_week(rows=400, seed=4, week=2).drop(columns=["customer_id"]).to_csv(evaluation, index=False)
    name = f"churn-repro-{uuid.uuid4().hex[:6]}"
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_experiment(name)
    model_uri = run(
        RunnerConfig(
            entrypoint=ENTRYPOINT,
            train_uri=str(train),
            eval_uri=str(evaluation),
            target="churned",
            params={"n_estimators": 40, "max_depth": 3},
            seed=11,
        )
    )
    version = mlflow.register_model(model_uri, name).version
    return {
        "name": name,
        "version": str(version),
        "train": train,
        "eval": evaluation,
        "url": mlflow_server.url,
    }


def test_a_version_retrained_from_its_lineage_predicts_identically_and_is_tagged(trained_version, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(trained_version["url"], registry_uri=trained_version["url"])
    result = reproduce(client, trained_version["name"], trained_version["version"])
    assert result["outcome"] == "identical"
    assert result["rows"] == 400
    assert result["differing_rows"] == 0
    assert result["max_difference"] == 0.0
    assert result["lineage"]["params"] == {"n_estimators": 40, "max_depth": 3}
    assert result["lineage"]["seed"] == 11
    assert result["lineage"]["target"] == "churned"
    # The command says the same, and records it on the version.
    code = main(
        [
            trained_version["name"],
            trained_version["version"],
            "--tracking-uri",
            trained_version["url"],
            "--record",
        ]
    )
    assert code == EXIT_IDENTICAL
    tags = client.get_model_version(trained_version["name"], trained_version["version"]).tags
    assert tags[lineage.TAG_REPRODUCTION_OUTCOME] == "identical"
    assert tags[lineage.TAG_REPRODUCTION_MAX_DIFFERENCE] == "0.0"


def test_a_changed_data_file_is_refused(trained_version, capsys):
    from mlflow import MlflowClient

    client = MlflowClient(trained_version["url"], registry_uri=trained_version["url"])
    train: Path = trained_version["train"]
    original = train.read_bytes()
    try:
        train.write_bytes(original + original.splitlines(keepends=True)[1])  # one row more
        with pytest.raises(ReproductionRefused, match="changed since the version was trained"):
            reproduce(client, trained_version["name"], trained_version["version"])
        code = main(
            [trained_version["name"], trained_version["version"], "--tracking-uri", trained_version["url"]]
        )
        assert code == EXIT_REFUSED
        assert "refused: the training data" in capsys.readouterr().err
    finally:
        train.write_bytes(original)


def test_different_models_are_reported_with_the_largest_difference():
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (x["a"] + rng.normal(scale=0.5, size=300) > 0).astype(int)
    strong, weak = LogisticRegression(C=1.0).fit(x, y), LogisticRegression(C=0.001).fit(x, y)
    same = compare_predictions(strong, LogisticRegression(C=1.0).fit(x, y), x, 0.0)
    assert same["identical"]
    assert same["max_difference"] == 0.0
    differ = compare_predictions(strong, weak, x, 0.0)
    assert not differ["identical"]
    gap = np.abs(strong.predict_proba(x) - weak.predict_proba(x)).max()
    assert differ["max_difference"] == pytest.approx(gap)
    assert differ["differing_rows"] == 300
    assert (
        compare_predictions(strong, weak, x, tolerance=1.0)["differing_labels"] == differ["differing_labels"]
    )
