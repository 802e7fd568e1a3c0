"""The in-pod runner: its input errors, its independence from Airflow, the reference entrypoints."""

from __future__ import annotations

import json

import pytest

from airflow_mlops_provider.training.runner import (
    EXIT_BAD_INPUT,
    RunnerConfig,
    RunnerInputError,
    load_entrypoint,
    parse_args,
    read_dataset,
    train,
)
from tests.conftest import python_in_subprocess


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(1, 60, 400),
            "spend": rng.normal(50, 15, 400),
            "plan": rng.choice(["basic", "pro", "team"], 400),
        }
    )
    frame["churned"] = ((frame["tenure"] < 12) ^ (rng.random(400) < 0.1)).astype(int)
    root = tmp_path_factory.mktemp("runner")
    frame.iloc[:300].to_parquet(root / "train.parquet", index=False)
    frame.iloc[300:].to_csv(root / "eval.csv", index=False)
    return {"train": str(root / "train.parquet"), "eval": str(root / "eval.csv")}


def config(data: dict[str, str], **overrides) -> RunnerConfig:
    base = {
        "entrypoint": "airflow_mlops_provider.training.examples:train_sklearn",
        "train_uri": data["train"],
        "eval_uri": data["eval"],
        "target": "churned",
        "params": {"n_estimators": 20},
        "seed": 1,
    }
    return RunnerConfig(**{**base, **overrides})


def test_arguments_fall_back_to_mlops_variables():
    env = {
        "MLOPS_ENTRYPOINT": "pkg.mod:fn",
        "MLOPS_TRAIN_URI": "/t.csv",
        "MLOPS_EVAL_URI": "/e.csv",
        "MLOPS_TARGET": "y",
        "MLOPS_PARAMS": '{"a": 1}',
        "MLOPS_SEED": "9",
        "MLFLOW_RUN_ID": "abc",
    }
    parsed = parse_args(["--seed", "4"], env)
    assert parsed == RunnerConfig("pkg.mod:fn", "/t.csv", "/e.csv", "y", {"a": 1}, 4, "abc")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--entrypoint", "a:b"], "missing --train-uri, --eval-uri, --target", id="missing"),
        pytest.param(
            [
                "--entrypoint",
                "a:b",
                "--train-uri",
                "t",
                "--eval-uri",
                "e",
                "--target",
                "y",
                "--params",
                "[1]",
            ],
            "not a JSON object",
            id="params-list",
        ),
        pytest.param(
            ["--entrypoint", "a:b", "--train-uri", "t", "--eval-uri", "e", "--target", "y", "--seed", "x"],
            "--seed 'x' is not a whole number",
            id="seed",
        ),
    ],
)
def test_bad_arguments_are_named(argv, message):
    with pytest.raises(RunnerInputError, match=message):
        parse_args(argv, {})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("no_colon", "not of the form", id="form"),
        pytest.param("no_such_pkg.mod:train", "module 'no_such_pkg' not found", id="module"),
        pytest.param("airflow_mlops_provider.training.examples:nope", "has no attribute 'nope'", id="attr"),
        pytest.param(
            "airflow_mlops_provider.training.runner:EXIT_OK", "is a int, not a function", id="callable"
        ),
    ],
)
def test_entrypoint_errors_name_the_entrypoint(spec, message):
    with pytest.raises(RunnerInputError, match=message) as info:
        load_entrypoint(spec)
    assert repr(spec) in str(info.value)


def test_unreadable_datasets_are_named(tmp_path):
    with pytest.raises(RunnerInputError, match="does not exist"):
        read_dataset(str(tmp_path / "missing.csv"))
    odd = tmp_path / "data.xlsx"
    odd.write_bytes(b"x")
    with pytest.raises(RunnerInputError, match=r"expected \.csv or \.parquet"):
        read_dataset(str(odd))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(RunnerInputError, match="cannot be read"):
        read_dataset(str(broken))


def test_missing_target_column_names_the_column_and_the_columns_there(data):
    with pytest.raises(RunnerInputError, match=r"target column 'label' is not in the training data") as info:
        train(config(data, target="label"))
    assert "'tenure'" in str(info.value)


def test_sklearn_entrypoint_is_deterministic_for_a_seed(data):
    first, again, other = train(config(data)), train(config(data)), train(config(data, seed=2))
    assert first.task_type == "classification"
    assert first.metrics["roc_auc"] == again.metrics["roc_auc"]
    assert first.metrics["log_loss"] == again.metrics["log_loss"]
    assert other.metrics["log_loss"] != first.metrics["log_loss"]
    assert first.fingerprints["train"].startswith("sha256:")
    assert first.params == {"n_estimators": 20, "seed": 1}


def test_xgboost_entrypoint_falls_back_to_the_cpu_and_is_deterministic(data):
    first = train(config(data, entrypoint="airflow_mlops_provider.training.examples:train_xgboost"))
    again = train(config(data, entrypoint="airflow_mlops_provider.training.examples:train_xgboost"))
    expected_device = "cuda" if first.gpus else "cpu"
    assert first.params["device"] == expected_device
    assert first.metrics["roc_auc"] == again.metrics["roc_auc"]
    assert first.metrics["roc_auc"] > 0.7


def test_runner_command_exits_2_on_bad_input_and_imports_no_airflow(data):
    result = python_in_subprocess(
        "import sys, runpy\n"
        "sys.argv = ['training'] + sys.argv[1:]\n"
        "try:\n"
        "    runpy.run_module('airflow_mlops_provider.training', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    print('AIRFLOW', any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules))\n"
        "    raise\n",
        "--entrypoint",
        "no_such_pkg.mod:train",
        "--train-uri",
        data["train"],
        "--eval-uri",
        data["eval"],
        "--target",
        "churned",
        MLFLOW_RUN_ID="",
    )
    assert result.returncode == EXIT_BAD_INPUT, result.stdout + result.stderr
    assert "entrypoint 'no_such_pkg.mod:train': module 'no_such_pkg' not found" in result.stdout
    assert "AIRFLOW False" in result.stdout


def test_runner_help_is_instant_and_standalone():
    result = python_in_subprocess(
        "import sys, json\nfrom airflow_mlops_provider.training import runner\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'airflow', 'mlflow', 'pandas', 'sklearn'})))"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
