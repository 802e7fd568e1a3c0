"""The BentoML store and build helpers, without building a Bento."""

from __future__ import annotations

import pytest

from airflow_mlops_provider.bentos.build import (
    LABEL_RUN_ID,
    backend_works,
    existing_from_same_run,
    merged_requirements,
)
from airflow_mlops_provider.exceptions import PackagingError


def test_refuses_an_unknown_container_backend() -> None:
    with pytest.raises(PackagingError, match="container_backend='kaniko'"):
        backend_works("kaniko")


def test_a_store_entry_from_another_run_is_refused_and_one_from_the_same_run_reused():
    from types import SimpleNamespace

    from bentoml.exceptions import NotFound

    entry = SimpleNamespace(info=SimpleNamespace(labels={LABEL_RUN_ID: "run-a"}))

    def missing(tag):
        raise NotFound(tag)

    find = existing_from_same_run
    assert (
        find(lambda tag: entry, "churn:v1", {LABEL_RUN_ID: "run-a"}, "Bento store", "bentoml delete churn:v1")
        is entry
    )
    assert (
        find(missing, "churn:v1", {LABEL_RUN_ID: "run-a"}, "Bento store", "bentoml delete churn:v1") is None
    )
    with pytest.raises(
        PackagingError, match=r"Bento store already holds churn:v1 from run 'run-a', not 'run-b'"
    ):
        find(lambda tag: entry, "churn:v1", {LABEL_RUN_ID: "run-b"}, "Bento store", "bentoml delete churn:v1")


def test_a_shadow_bentos_requirements_hold_both_models_and_refuse_two_pins(tmp_path):

    champion, shadow, other = tmp_path / "champion.txt", tmp_path / "shadow.txt", tmp_path / "other.txt"
    champion.write_text(
        "# pinned by MLflow\nmlflow==3.1.0\nscikit-learn==1.7.2\npandas\n"
        'annotated-doc==0.0.6; python_full_version < "3.11"\nannotated-doc==0.0.7; python_full_version >= "3.11"\n'
    )
    shadow.write_text("scikit-learn\npandas==2.2.3\nxgboost==2.1.4\n")
    other.write_text("scikit-learn==1.6.1\n")
    assert merged_requirements([champion, shadow, tmp_path / "absent.txt"]) == [
        "mlflow==3.1.0",
        "scikit-learn==1.7.2",
        "pandas==2.2.3",
        'annotated-doc==0.0.6; python_full_version < "3.11"',
        'annotated-doc==0.0.7; python_full_version >= "3.11"',
        "xgboost==2.1.4",
    ]
    with pytest.raises(
        PackagingError,
        match=r"disagree on 'scikit-learn': 'scikit-learn==1\.7\.2' and 'scikit-learn==1\.6\.1'",
    ):
        merged_requirements([champion, other])
