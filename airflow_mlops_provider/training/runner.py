"""The training runner: load the entrypoint and the data, train, evaluate, log to the existing run.

Exit status: 0 when a model was trained and logged, 2 for bad input (an entrypoint, URI or target
column that does not exist), 1 when training itself failed. In every failure the MLflow run is marked
FAILED with an ``mlops.error`` tag that says why.

Standard library at module level: pandas, scikit-learn and MLflow load inside the functions, so that
``--help`` and argument errors are instant.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import logging
import os
import platform
import random
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider import lineage
from airflow_mlops_provider.training import TrainingInput, TrainingResult

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("airflow_mlops_provider.training")

#: Name of the logged model and path of the environment report among the run's artifacts.
MODEL_NAME = "model"
ARTIFACT_ENVIRONMENT = "environment/environment.json"

EXIT_OK = 0
EXIT_TRAINING_FAILED = 1
EXIT_BAD_INPUT = 2

#: Libraries whose versions are recorded with every run and pinned in the logged model's requirements.
RECORDED_LIBRARIES = ("mlflow", "scikit-learn", "pandas", "numpy", "pyarrow", "cloudpickle", "xgboost")
_MODEL_REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "cloudpickle", "xgboost")


class RunnerInputError(Exception):
    """The runner was given an entrypoint, a dataset or a column that does not exist."""


@dataclass(frozen=True)
class RunnerConfig:
    """What one training run needs, from the command line or ``MLOPS_*`` variables.

    :param entrypoint: ``package.module:function`` of the user's training function.
    :param train_uri: Training data: a CSV or Parquet file, a directory of them, or a glob.
    :param eval_uri: Held-out evaluation data, same forms.
    :param target: Target column.
    :param params: Hyper-parameters handed to the entrypoint.
    :param seed: Seed for every source of randomness.
    :param run_id: The MLflow run to log to; ``None`` starts a new one (standalone use).
    """

    entrypoint: str
    train_uri: str
    eval_uri: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    run_id: str | None = None


def parse_args(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> RunnerConfig:
    """Return the configuration from ``argv``, each option defaulting to its ``MLOPS_*`` variable."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_mlops_provider.training",
        description="Train a model with the given entrypoint and log it to the MLflow run MLFLOW_RUN_ID.",
    )
    parser.add_argument("--entrypoint", default=environ.get("MLOPS_ENTRYPOINT"), help="pkg.module:function")
    parser.add_argument("--train-uri", default=environ.get("MLOPS_TRAIN_URI"), help="training data URI")
    parser.add_argument("--eval-uri", default=environ.get("MLOPS_EVAL_URI"), help="evaluation data URI")
    parser.add_argument("--target", default=environ.get("MLOPS_TARGET"), help="target column")
    parser.add_argument("--params", default=environ.get("MLOPS_PARAMS", "{}"), help="JSON object")
    parser.add_argument("--seed", default=environ.get("MLOPS_SEED", "0"), help="random seed")
    parser.add_argument("--run-id", default=environ.get("MLFLOW_RUN_ID"), help="MLflow run to log to")
    args = parser.parse_args(argv)
    missing = [
        f"--{name.replace('_', '-')}"
        for name in ("entrypoint", "train_uri", "eval_uri", "target")
        if not getattr(args, name)
    ]
    if missing:
        raise RunnerInputError(f"missing {', '.join(missing)} (or the MLOPS_* variable of the same name)")
    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as err:
        raise RunnerInputError(f"--params {args.params!r} is not JSON: {err}") from None
    if not isinstance(params, dict):
        raise RunnerInputError(f"--params {args.params!r} is not a JSON object")
    try:
        seed = int(args.seed)
    except ValueError:
        raise RunnerInputError(f"--seed {args.seed!r} is not a whole number") from None
    return RunnerConfig(
        entrypoint=args.entrypoint,
        train_uri=args.train_uri,
        eval_uri=args.eval_uri,
        target=args.target,
        params=params,
        seed=seed,
        run_id=args.run_id or None,
    )


def load_entrypoint(spec: str) -> Callable[[TrainingInput], Any]:
    """Import ``package.module:function`` and return the function."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise RunnerInputError(f"entrypoint {spec!r} is not of the form 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        parts = module_name.split(".")
        if err.name not in {".".join(parts[: i + 1]) for i in range(len(parts))}:
            # The entrypoint's module was found; something it imports was not.
            missing = repr(err.name) if err.name else "a module"
            raise RunnerInputError(
                f"entrypoint {spec!r}: importing {module_name!r} failed: it imports {missing}, which is "
                f"not installed ({err}); install it where the training runs (for the kubernetes "
                f"runtime: in the trainer image)"
            ) from None
        searched = [p or os.getcwd() for p in sys.path]
        raise RunnerInputError(
            f"entrypoint {spec!r}: module {err.name!r} not found; searched {searched}. For the local "
            f"runtime put {parts[0]}.py (or the package {parts[0]}/) beside the DAG file, or give its "
            f"folder as local_cwd= or on PYTHONPATH; for the kubernetes runtime the module must be "
            f"installed in the trainer image"
        ) from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise RunnerInputError(f"entrypoint {spec!r}: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise RunnerInputError(f"entrypoint {spec!r} is a {type(target).__name__}, not a function")
    return target


def _is_remote(uri: str) -> bool:
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    return bool(scheme) and scheme != "file"


def read_dataset(uri: str) -> pd.DataFrame:
    """Read training or evaluation data with the provider's one dataset reader
    (:func:`airflow_mlops_provider.data.datasets.read_dataframe`, NumPy dtypes).

    A CSV or Parquet file, a directory of partitions or a glob; local, or any fsspec scheme whose
    driver is installed.
    """
    from airflow_mlops_provider.data.datasets import DatasetError, read_dataframe

    try:
        return read_dataframe(uri, numpy_dtypes=True)
    except DatasetError as err:
        raise RunnerInputError(f"training data {uri!r} cannot be read: {err}") from None


def fingerprint(uri: str) -> str | None:
    """Return the content fingerprint of a local dataset, ``None`` for a remote one."""
    return None if _is_remote(uri) else lineage.data_fingerprint(uri)


def detect_gpus() -> list[str]:
    """Return the names of the NVIDIA GPUs this process can see (``nvidia-smi -L``), or ``[]``."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return []
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split(":", 1)[1].split("(UUID")[0].strip() for line in out.splitlines() if ":" in line]


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(gpus: list[str]) -> dict[str, Any]:
    """Return what the run ran on: python, platform, library versions and GPUs."""
    libraries = {name: _version(name) for name in RECORDED_LIBRARIES}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": {k: v for k, v in libraries.items() if v},
        "gpu_count": len(gpus),
        "gpus": gpus,
    }


def seed_everything(seed: int) -> None:
    """Seed the global generators a training function may use without asking."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))


def is_classifier(model: Any) -> bool:
    """Whether ``model`` is a classifier (scikit-learn's estimator type, or ``predict_proba``)."""
    from sklearn.base import is_classifier as sk_is_classifier

    return bool(sk_is_classifier(model)) or hasattr(model, "predict_proba")


def evaluate(model: Any, features: pd.DataFrame, labels: pd.Series) -> dict[str, float]:
    """Return held-out metrics: accuracy, ROC AUC, log loss and F1 for a classifier; RMSE, MAE, R² else."""
    import numpy as np
    from sklearn import metrics

    predictions = model.predict(features)
    if not is_classifier(model):
        return {
            "rmse": float(np.sqrt(metrics.mean_squared_error(labels, predictions))),
            "mae": float(metrics.mean_absolute_error(labels, predictions)),
            "r2": float(metrics.r2_score(labels, predictions)),
        }
    result = {"accuracy": float(metrics.accuracy_score(labels, predictions))}
    classes = list(getattr(model, "classes_", sorted(set(labels))))
    result["f1"] = float(
        metrics.f1_score(labels, predictions, pos_label=classes[1])
        if len(classes) == 2
        else metrics.f1_score(labels, predictions, average="macro")
    )
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(features)
        result["log_loss"] = float(metrics.log_loss(labels, proba, labels=classes))
        if len(set(labels)) > 1:
            result["roc_auc"] = float(
                metrics.roc_auc_score(labels, proba[:, 1])
                if len(classes) == 2
                else metrics.roc_auc_score(labels, proba, multi_class="ovr", labels=classes)
            )
    return result


@dataclass
class TrainedModel:
    """A trained model with everything the runner measured about it."""

    model: Any
    metrics: dict[str, float]
    params: dict[str, Any]
    task_type: str
    example: pd.DataFrame
    fingerprints: dict[str, str | None]
    gpus: list[str]
    #: Feature columns the model accepts missing values in: the signature marks them optional.
    optional_columns: list[str] = field(default_factory=list)


def train(config: RunnerConfig) -> TrainedModel:
    """Load the entrypoint and the data, call it, evaluate the result. Logs nothing anywhere."""
    entry = load_entrypoint(config.entrypoint)
    train_frame = read_dataset(config.train_uri)
    eval_frame = read_dataset(config.eval_uri)
    for name, uri, frame in (
        ("training", config.train_uri, train_frame),
        ("eval", config.eval_uri, eval_frame),
    ):
        if config.target not in frame.columns:
            raise RunnerInputError(
                f"target column {config.target!r} is not in the {name} data {uri!r}; "
                f"its columns are {sorted(map(str, frame.columns))}"
            )
    gpus = detect_gpus()
    data = TrainingInput(
        train=train_frame,
        eval=eval_frame,
        target=config.target,
        params=dict(config.params),
        seed=config.seed,
        gpu=bool(gpus),
    )
    seed_everything(config.seed)
    started = time.monotonic()
    returned = entry(data)
    train_seconds = time.monotonic() - started
    result = returned if isinstance(returned, TrainingResult) else TrainingResult(model=returned)
    if not hasattr(result.model, "predict"):
        raise TypeError(
            f"entrypoint {config.entrypoint!r} returned {type(result.model).__name__}, which has no "
            f"predict(); return a fitted scikit-learn-compatible model or a TrainingResult"
        )
    features, labels = data.features(eval_frame), data.labels(eval_frame)
    train_features = data.features(train_frame)
    optional_columns = _optional_columns(config.entrypoint, result, train_features, features)
    evaluation = evaluate(result.model, features, labels)
    on_train = evaluate(result.model, train_features, data.labels(train_frame))
    metrics = {
        **evaluation,
        **{f"train_{k}": v for k, v in on_train.items()},
        "train_seconds": train_seconds,
        "train_rows": float(len(train_frame)),
        "eval_rows": float(len(eval_frame)),
        **{k: float(v) for k, v in result.metrics.items()},
    }
    return TrainedModel(
        model=result.model,
        metrics=metrics,
        params={**config.params, **result.params, "seed": config.seed},
        task_type="classification" if is_classifier(result.model) else "regression",
        example=features.head(5),
        fingerprints={"train": fingerprint(config.train_uri), "eval": fingerprint(config.eval_uri)},
        gpus=gpus,
        optional_columns=optional_columns,
    )


def _optional_columns(
    entrypoint: str, result: TrainingResult, train_features: pd.DataFrame, eval_features: pd.DataFrame
) -> list[str]:
    """Return the feature columns the model accepts missing values in, in the features' order.

    Those the entrypoint declared, and those with nulls in the training or evaluation features: the
    model was fitted and evaluated with missing values there, so its pipeline handles them.
    """
    declared = result.optional_columns
    if isinstance(declared, str):
        raise TypeError(f"entrypoint {entrypoint!r}: optional_columns={declared!r} is a string, not a list")
    columns = [str(c) for c in train_features.columns]
    unknown = [c for c in declared if c not in columns]
    if unknown:
        raise ValueError(
            f"entrypoint {entrypoint!r} declared optional columns {unknown} that are not feature "
            f"columns; the feature columns are {columns}"
        )
    with_nulls = {
        str(c) for frame in (train_features, eval_features) for c in frame.columns[frame.isna().any()]
    }
    return [c for c in columns if c in with_nulls or c in declared]


def _model_requirements() -> list[str]:
    # Pinned from what is installed: MLflow's own inference loads the model in a subprocess, slow.
    return [f"{name}=={v}" for name in _MODEL_REQUIREMENTS if (v := _version(name))]


def _serialization(model: Any) -> dict[str, Any]:
    """Return how to save ``model``: skops (no arbitrary code on load) where it can, else cloudpickle.

    skops refuses to load types it does not know unless they are listed as trusted. This process
    built the model, so the types in it are exactly the ones to trust; the list is stored with the
    model and used when it is loaded.
    """
    try:
        import skops.io

        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    except Exception as err:
        log.info("Saving the model with cloudpickle: skops cannot serialise it (%s)", err)
        return {"serialization_format": "cloudpickle"}
    return {"serialization_format": "skops", "skops_trusted_types": trusted}


def _check_fingerprint(
    client: Any, run_id: str, tag: str, uri_tag: str, uri: str, actual: str | None
) -> None:
    recorded = client.get_run(run_id).data.tags.get(tag)
    if actual and recorded and recorded != actual:
        raise RunnerInputError(
            f"dataset {uri!r} changed since the task started: fingerprint {recorded} was recorded, "
            f"{actual} is there now"
        )
    if actual and not recorded:
        client.set_tag(run_id, tag, actual)
    client.set_tag(run_id, uri_tag, uri)


def model_signature(trained: TrainedModel) -> tuple[Any, pd.DataFrame]:
    """Return the signature to log the model with, and the input example that matches it.

    Types come from the example (MLflow's ``infer_signature``). The columns in
    ``trained.optional_columns`` are optional (``required: false``), every other one is required. An
    optional integer column is declared ``double``: pandas holds a null there as a float NaN, which
    MLflow's schema enforcement refuses in an integer column, so a served model could never get it.
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, DataType, Schema

    with warnings.catch_warnings():
        # MLflow's hint that integer columns cannot hold nulls: the optional ones become double below.
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer column", UserWarning)
        signature = infer_signature(trained.example, trained.model.predict(trained.example))
    if signature.inputs is None or not signature.inputs.has_input_names():
        return signature, trained.example
    optional = set(trained.optional_columns)
    specs: list[Any] = []
    widened: list[str] = []
    for spec in signature.inputs.inputs:
        if spec.name in optional and spec.type in (DataType.integer, DataType.long):
            widened.append(spec.name)
            specs.append(ColSpec(DataType.double, spec.name, required=False))
        else:
            if spec.name in optional and spec.type == DataType.boolean:
                log.warning(
                    "Column %r is boolean: the served model refuses null there even though it is "
                    "optional, since MLflow cannot pass a missing value in a boolean column to the model",
                    spec.name,
                )
            specs.append(ColSpec(spec.type, spec.name, required=spec.name not in optional))
    example = trained.example.astype(dict.fromkeys(widened, "float64"))
    return ModelSignature(Schema(specs), signature.outputs, signature.params), example


def log_trained(client: Any, run_id: str, config: RunnerConfig, trained: TrainedModel) -> str:
    """Log params, metrics, lineage, environment and the model to ``run_id``; return the model URI."""
    import mlflow

    _check_fingerprint(
        client,
        run_id,
        lineage.TAG_DATA_FINGERPRINT,
        lineage.TAG_DATA_URI,
        config.train_uri,
        trained.fingerprints["train"],
    )
    _check_fingerprint(
        client,
        run_id,
        lineage.TAG_EVAL_DATA_FINGERPRINT,
        lineage.TAG_EVAL_DATA_URI,
        config.eval_uri,
        trained.fingerprints["eval"],
    )
    env = environment(trained.gpus)
    tags = {
        lineage.TAG_ENTRYPOINT: config.entrypoint,
        lineage.TAG_SEED: str(config.seed),
        lineage.TAG_TARGET: config.target,
        lineage.TAG_TRAINING_PARAMS: json.dumps(config.params, sort_keys=True),
        lineage.TAG_TASK_TYPE: trained.task_type,
        f"{lineage.TAG_ENV_PREFIX}python": env["python"],
        f"{lineage.TAG_ENV_PREFIX}gpu_count": str(env["gpu_count"]),
        **{f"{lineage.TAG_ENV_PREFIX}{lib}": v for lib, v in env["libraries"].items()},
    }
    # The image's commit, when it carries one and the operator did not know it.
    sha = os.environ.get("MLOPS_GIT_SHA")
    if sha and lineage.TAG_GIT_SHA not in client.get_run(run_id).data.tags:
        tags[lineage.TAG_GIT_SHA] = sha
    mlflow.set_tags(tags)
    mlflow.log_params(
        {
            k: v if isinstance(v, str | int | float | bool) else json.dumps(v)
            for k, v in trained.params.items()
        }
    )
    mlflow.log_metrics(trained.metrics)
    mlflow.log_dict(env, ARTIFACT_ENVIRONMENT)
    signature, example = model_signature(trained)
    info = mlflow.sklearn.log_model(
        trained.model,
        name=MODEL_NAME,
        signature=signature,
        input_example=example,
        pip_requirements=_model_requirements(),
        **_serialization(trained.model),
    )
    mlflow.set_tag(lineage.TAG_MODEL_URI, info.model_uri)
    return str(info.model_uri)


def _mark_failed(run_id: str | None, message: str) -> None:
    if not run_id:
        return
    try:
        from mlflow import MlflowClient

        client = MlflowClient()
        client.set_tag(run_id, lineage.TAG_ERROR, message[:4000])
        client.set_terminated(run_id, status="FAILED")
    except Exception as err:  # the exit status still says it failed
        log.error("Could not mark MLflow run %s FAILED: %s", run_id, err)


def run(config: RunnerConfig) -> str:
    """Train and log to ``config.run_id`` (or a new run), end the run FINISHED; return the model URI."""
    import mlflow

    trained = train(config)
    with mlflow.start_run(run_id=config.run_id) as active:
        run_id = active.info.run_id
        log.info("Logging to MLflow run %s at %s", run_id, mlflow.get_tracking_uri())
        model_uri = log_trained(mlflow.MlflowClient(), run_id, config, trained)
    summary = {k: round(v, 6) for k, v in trained.metrics.items() if not k.startswith("train_")}
    log.info("Trained %s; held-out metrics %s; model %s", config.entrypoint, summary, model_uri)
    return model_uri


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: run, and turn every failure into an exit status and a FAILED run."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(message)s")
    # The run id may come from the command line only when parsing succeeded; the variable always works.
    run_id = os.environ.get("MLFLOW_RUN_ID") or None
    try:
        config = parse_args(argv)
        run_id = config.run_id or run_id
        if config.run_id:
            os.environ["MLFLOW_RUN_ID"] = config.run_id
        run(config)
    except RunnerInputError as err:
        log.error("Bad input: %s", err)
        _mark_failed(run_id, f"bad input: {err}")
        return EXIT_BAD_INPUT
    except Exception as err:
        log.exception("Training failed")
        _mark_failed(run_id, f"training failed: {type(err).__name__}: {err}")
        return EXIT_TRAINING_FAILED
    return EXIT_OK
