"""Reproduce a model version from its lineage alone, and say whether it predicts the same.

A version's training run records what trained it (``mlops.*`` tags, ``lineage.py``): the entrypoint,
the training and evaluation data URIs with their content fingerprints, the parameters, the seed and
the target column. :func:`reproduce` reads them, refuses when either dataset's fingerprint no longer
matches (the data changed: nothing can be reproduced from it), trains again in this process with
the training runner's own :func:`~airflow_mlops_provider.training.runner.train` (which logs
nothing), and compares the new model's predictions on the evaluation data with the registered
model's: ``identical`` (labels equal, and class probabilities or regression values equal to within
``tolerance``), or ``different`` with the number of differing rows and the largest difference.
The code is what this environment imports; the run's code version is reported beside it.

    python -m airflow_mlops_provider.reproduction churn 3

exits 0 when identical, 1 when different, 2 when refused (changed data, missing lineage).
Airflow-free.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider import lineage

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXIT_IDENTICAL, EXIT_DIFFERENT, EXIT_REFUSED = 0, 1, 2


class ReproductionRefused(Exception):
    """The version cannot be reproduced: its data changed, or its lineage is incomplete."""


@dataclass(frozen=True)
class Lineage:
    """What a training run recorded of how it trained."""

    entrypoint: str
    train_uri: str
    train_fingerprint: str | None
    eval_uri: str
    eval_fingerprint: str | None
    target: str
    params: dict[str, Any]
    seed: int
    code_version: str | None

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], target: str | None = None) -> Lineage:
        """Read it from a run's tags; ``target`` for runs from before the runner recorded it."""
        needed = {
            "entrypoint": lineage.TAG_ENTRYPOINT,
            "training data": lineage.TAG_DATA_URI,
            "evaluation data": lineage.TAG_EVAL_DATA_URI,
        }
        missing = [f"{what} ({tag})" for what, tag in needed.items() if not tags.get(tag)]
        chosen_target = target or tags.get(lineage.TAG_TARGET)
        if not chosen_target:
            missing.append(f"target column ({lineage.TAG_TARGET}; or pass target)")
        if missing:
            raise ReproductionRefused(f"the training run does not record {', '.join(missing)}")
        return cls(
            entrypoint=tags[lineage.TAG_ENTRYPOINT],
            train_uri=tags[lineage.TAG_DATA_URI],
            train_fingerprint=tags.get(lineage.TAG_DATA_FINGERPRINT),
            eval_uri=tags[lineage.TAG_EVAL_DATA_URI],
            eval_fingerprint=tags.get(lineage.TAG_EVAL_DATA_FINGERPRINT),
            target=str(chosen_target),
            params=json.loads(tags.get(lineage.TAG_TRAINING_PARAMS) or "{}"),
            seed=int(tags.get(lineage.TAG_SEED) or 0),
            code_version=tags.get(lineage.TAG_CODE_VERSION) or tags.get(lineage.TAG_GIT_SHA),
        )

    def check_data(self) -> None:
        """Raise unless both datasets still have the fingerprints the run recorded."""
        for what, uri, recorded in (
            ("training", self.train_uri, self.train_fingerprint),
            ("evaluation", self.eval_uri, self.eval_fingerprint),
        ):
            if not recorded:
                raise ReproductionRefused(f"the run recorded no fingerprint of its {what} data {uri!r}")
            try:
                now = lineage.data_fingerprint(uri)
            except (OSError, ValueError) as err:
                raise ReproductionRefused(f"the {what} data {uri!r} cannot be read: {err}") from None
            if now != recorded:
                raise ReproductionRefused(
                    f"the {what} data {uri!r} changed since the version was trained: fingerprint "
                    f"{recorded} was recorded, {now} is there now"
                )


def compare_predictions(original: Any, reproduced: Any, frame: Any, tolerance: float) -> dict[str, Any]:
    """Compare two fitted models on ``frame``: labels, and probabilities (or values) within ``tolerance``."""
    import numpy as np

    def outputs(model: Any) -> tuple[Any, Any]:
        labels = np.asarray(model.predict(frame))
        scores = model.predict_proba(frame) if hasattr(model, "predict_proba") else labels
        return labels, np.asarray(scores, dtype=float).reshape(len(frame), -1)

    labels_a, scores_a = outputs(original)
    labels_b, scores_b = outputs(reproduced)
    if scores_a.shape != scores_b.shape:
        return {"rows": len(frame), "differing_rows": len(frame), "max_difference": None, "identical": False}
    gaps = np.abs(scores_a - scores_b).max(axis=1)
    differing = (labels_a != labels_b) | (gaps > tolerance)
    return {
        "rows": len(frame),
        "differing_rows": int(differing.sum()),
        "differing_labels": int((labels_a != labels_b).sum()),
        "max_difference": float(gaps.max()) if len(gaps) else 0.0,
        "identical": not bool(differing.any()),
    }


def reproduce(
    client: MlflowClient, name: str, version: str, *, target: str | None = None, tolerance: float = 0.0
) -> dict[str, Any]:
    """Retrain ``name`` v``version`` from its lineage and compare; raise :class:`ReproductionRefused`.

    :param target: The target column, for runs that did not record it.
    :param tolerance: Largest difference in a probability (or regression value) still counted equal.
    :return: ``{"outcome": "identical" | "different", "rows", "differing_rows", "differing_labels",
        "max_difference", "lineage": {...}, "code_version": {"recorded", "now"}}``.
    """
    import pandas as pd

    from airflow_mlops_provider.promotion import load_model
    from airflow_mlops_provider.training.runner import RunnerConfig, read_dataset, train

    mv = client.get_model_version(name, str(version))
    if not mv.run_id or not mv.source:
        raise ReproductionRefused(f"{name} v{version} has no training run to read its lineage from")
    found = Lineage.from_tags(client.get_run(mv.run_id).data.tags, target)
    found.check_data()
    config = RunnerConfig(
        entrypoint=found.entrypoint,
        train_uri=found.train_uri,
        eval_uri=found.eval_uri,
        target=found.target,
        params=found.params,
        seed=found.seed,
    )
    trained = train(config)
    frame: pd.DataFrame = read_dataset(found.eval_uri)
    features = frame.drop(columns=[found.target])
    with tempfile.TemporaryDirectory(prefix="mlops-reproduce-") as tmp:
        original = load_model(client, str(mv.source), tmp)
        raw = original.get_raw_model()  # the fitted estimator, as registered
        compared = compare_predictions(raw, trained.model, features, tolerance)
    from importlib.metadata import version as installed

    return {
        "outcome": "identical" if compared.pop("identical") else "different",
        **compared,
        "registered_model_name": name,
        "version": str(version),
        "lineage": {
            "entrypoint": found.entrypoint,
            "train_uri": found.train_uri,
            "train_fingerprint": found.train_fingerprint,
            "eval_uri": found.eval_uri,
            "params": found.params,
            "seed": found.seed,
            "target": found.target,
        },
        "code_version": {"recorded": found.code_version, "now": installed("airflow-mlops-provider")},
        "tolerance": tolerance,
    }


def record(client: MlflowClient, name: str, version: str, result: Mapping[str, Any], checked_at: str) -> None:
    """Tag the version with the reproduction's outcome."""
    client.set_model_version_tag(name, version, lineage.TAG_REPRODUCTION_OUTCOME, str(result["outcome"]))
    client.set_model_version_tag(name, version, lineage.TAG_REPRODUCTION_AT, checked_at)
    client.set_model_version_tag(
        name, version, lineage.TAG_REPRODUCTION_MAX_DIFFERENCE, str(result.get("max_difference"))
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m airflow_mlops_provider.reproduction NAME VERSION [--target T] [--tolerance X]``."""
    from mlflow import MlflowClient

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", help="registered model")
    parser.add_argument("version", help="model version")
    parser.add_argument("--target", help="target column, for runs that did not record it")
    parser.add_argument("--tolerance", type=float, default=0.0, help="largest difference counted equal")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--record", action="store_true", help="tag the version with the outcome")
    args = parser.parse_args(argv)
    client = MlflowClient(tracking_uri=args.tracking_uri, registry_uri=args.tracking_uri)
    try:
        result = reproduce(client, args.name, args.version, target=args.target, tolerance=args.tolerance)
    except ReproductionRefused as err:
        print(f"refused: {err}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(result, indent=2, default=str))
    if args.record:
        from airflow_mlops_provider.promotion import utcnow_iso

        record(client, args.name, args.version, result, utcnow_iso())
    return EXIT_IDENTICAL if result["outcome"] == "identical" else EXIT_DIFFERENT


if __name__ == "__main__":
    raise SystemExit(main())
