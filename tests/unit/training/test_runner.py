"""The in-pod runner: its input errors, its independence from Airflow, the reference entrypoints."""

from __future__ import annotations

import json

import pytest

from airflow_mlops_provider.training import TrainingInput, TrainingResult
from airflow_mlops_provider.training.runner import (
    EXIT_BAD_INPUT,
    RunnerConfig,
    RunnerInputError,
    load_entrypoint,
    model_signature,
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
    with pytest.raises(RunnerInputError, match=r"missing\.csv' cannot be read: no dataset at"):
        read_dataset(str(tmp_path / "missing.csv"))
    odd = tmp_path / "data.xlsx"
    odd.write_bytes(b"x")
    with pytest.raises(RunnerInputError, match="cannot tell the format of"):
        read_dataset(str(odd))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(RunnerInputError, match=r"has a \.parquet name but looks like CSV text"):
        read_dataset(str(broken))


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_training_data_reads_with_numpy_dtypes_whatever_the_format(tmp_path, suffix):
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(
        {"n": [1, 2, None], "k": [1, 2, 3], "s": ["a", None, "c"], "x": [0.5, None, 1.5], "y": [0, 1, 0]}
    )
    path = tmp_path / f"d.{suffix}"
    frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path, index=False)
    read = read_dataset(str(path))
    assert {c: str(t) for c, t in read.dtypes.items()} == {
        "n": "float64",
        "k": "int64",
        "s": "object",
        "x": "float64",
        "y": "int64",
    }
    assert read["s"].iloc[1] is np.nan
    assert np.isnan(read["n"].iloc[2])


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


def reporting_missing(data: TrainingInput) -> TrainingResult:
    """An entrypoint that reports how missing values in ``plan`` reached it."""
    import pandas as pd

    from airflow_mlops_provider.training.examples import train_sklearn

    missing = {
        name: sorted({type(v).__name__ for v in frame["plan"] if pd.isna(v)})
        for name, frame in (("train", data.train), ("eval", data.eval))
    }
    return TrainingResult(model=train_sklearn(data), params={"missing": missing})


def declaring_optional(data: TrainingInput) -> TrainingResult:
    """An entrypoint that declares the columns in ``params["optional"]`` optional."""
    from airflow_mlops_provider.training.examples import train_sklearn

    return TrainingResult(model=train_sklearn(data), optional_columns=data.params["optional"])


@pytest.fixture(scope="module")
def data_with_nulls(tmp_path_factory) -> dict[str, str]:
    """Training data with nulls in ``tenure`` (integer when complete) and ``plan``; eval data with a
    null in ``spend`` past the first five rows, which the signature is inferred from."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(1, 60, 400).astype(float),
            "spend": rng.normal(50, 15, 400),
            "plan": rng.choice(["basic", "pro", "team"], 400).astype(object),
            "visits": rng.integers(0, 9, 400),
        }
    )
    frame["churned"] = ((frame["tenure"] < 12) ^ (rng.random(400) < 0.1)).astype(int)
    frame.loc[rng.random(400) < 0.15, "tenure"] = np.nan
    frame.loc[rng.random(400) < 0.15, "plan"] = np.nan
    train_part, eval_part = frame.iloc[:300].copy(), frame.iloc[300:].copy()
    eval_part["tenure"] = eval_part["tenure"].fillna(10).astype(int)
    eval_part["plan"] = eval_part["plan"].fillna("pro")
    eval_part.iloc[10, eval_part.columns.get_loc("spend")] = np.nan
    root = tmp_path_factory.mktemp("runner-nulls")
    train_part.to_parquet(root / "train.parquet", index=False)
    eval_part.to_csv(root / "eval.csv", index=False)
    return {"train": str(root / "train.parquet"), "eval": str(root / "eval.csv")}


def signature_columns(signature) -> dict[str, tuple[str, bool]]:
    return {c["name"]: (c["type"], c["required"]) for c in signature.inputs.to_dict()}


def test_columns_with_nulls_in_the_data_are_optional_in_the_signature(data_with_nulls):
    import pandas as pd
    from mlflow.models import validate_schema

    from airflow_mlops_provider.serving.schema import row_model, to_frame

    trained = train(config(data_with_nulls))
    signature, example = model_signature(trained)
    assert trained.optional_columns == ["tenure", "spend", "plan"]
    # tenure is integer in the example: as an optional column it is declared double, so a null fits.
    assert signature_columns(signature) == {
        "tenure": ("double", False),
        "spend": ("double", False),
        "plan": ("string", False),
        "visits": ("long", True),
    }
    assert str(trained.example["tenure"].dtype) == "int64"
    assert str(example["tenure"].dtype) == "float64"
    # The served path: a row of nulls passes the Bento's schema and MLflow's, and the model imputes it.
    columns = signature.inputs.to_dict()
    row = row_model(columns).model_validate({"tenure": None, "spend": None, "plan": None, "visits": 2})
    frame = to_frame([row.model_dump()], columns)
    validate_schema(frame, signature.inputs)
    assert trained.model.predict(frame).tolist()[0] in (0, 1)
    assert pd.isna(frame.iloc[0][["tenure", "spend", "plan"]]).all()


def test_missing_strings_reach_the_entrypoint_as_nan_from_parquet_and_csv(data_with_nulls, tmp_path):
    import pandas as pd

    # Parquet gives None for a missing string, which SimpleImputer would not impute.
    assert pd.read_parquet(data_with_nulls["train"])["plan"].isna().any()
    assert None in pd.read_parquet(data_with_nulls["train"])["plan"].tolist()
    frame = pd.read_parquet(data_with_nulls["train"]).head(100)
    frame.to_csv(tmp_path / "eval.csv", index=False)
    trained = train(
        config(
            data_with_nulls,
            entrypoint="tests.unit.training.test_runner:reporting_missing",
            eval_uri=str(tmp_path / "eval.csv"),
        )
    )
    assert trained.params["missing"] == {"train": ["float"], "eval": ["float"]}


def test_columns_without_nulls_stay_required(data):
    trained = train(config(data))
    signature, example = model_signature(trained)
    assert trained.optional_columns == []
    assert signature_columns(signature) == {
        "tenure": ("long", True),
        "spend": ("double", True),
        "plan": ("string", True),
    }
    assert example.equals(trained.example)


def test_entrypoint_declares_optional_columns(data):
    trained = train(
        config(
            data,
            entrypoint="tests.unit.training.test_runner:declaring_optional",
            params={"optional": ["plan", "tenure"]},
        )
    )
    signature, _ = model_signature(trained)
    assert trained.optional_columns == ["tenure", "plan"]
    assert signature_columns(signature) == {
        "tenure": ("double", False),
        "spend": ("double", True),
        "plan": ("string", False),
    }


@pytest.mark.parametrize(
    ("optional", "error", "message"),
    [
        pytest.param(
            ["plan", "churned", "region"],
            ValueError,
            r"declared optional columns \['churned', 'region'\] that are not feature columns; "
            r"the feature columns are \['tenure', 'spend', 'plan'\]",
            id="unknown",
        ),
        pytest.param("plan", TypeError, "optional_columns='plan' is a string, not a list", id="string"),
    ],
)
def test_declared_optional_columns_must_be_feature_columns(data, optional, error, message):
    with pytest.raises(error, match=message):
        train(
            config(
                data,
                entrypoint="tests.unit.training.test_runner:declaring_optional",
                params={"optional": optional},
            )
        )
