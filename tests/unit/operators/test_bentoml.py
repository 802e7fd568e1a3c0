"""BentoPackageOperator without a server: naming, parameters, and cheap imports."""

from __future__ import annotations

import pytest

from airflow_mlops_provider.exceptions import MlopsProviderError, PackagingError
from airflow_mlops_provider.operators.bentoml import BentoPackageOperator, bento_name
from tests.conftest import python_in_subprocess


@pytest.mark.parametrize(
    ("model_name", "expected"),
    [
        pytest.param("churn", "churn", id="plain"),
        pytest.param("Churn Model", "churn-model", id="spaces-and-capitals"),
        pytest.param("team/churn_v2", "team-churn_v2", id="slash"),
    ],
)
def test_bento_name_is_a_valid_bentoml_tag_name(model_name: str, expected: str) -> None:
    assert bento_name(model_name) == expected


def test_bento_name_refuses_a_name_with_nothing_left() -> None:
    with pytest.raises(PackagingError, match="empty BentoML tag name"):
        bento_name("///")


def test_packaging_error_is_a_provider_error() -> None:
    assert issubclass(PackagingError, MlopsProviderError)


def test_operator_defaults_to_the_champion_and_templates_its_uris() -> None:
    op = BentoPackageOperator(task_id="package", model_name="churn")
    assert (op.alias, op.version, op.smoke_test) == ("champion", None, True)
    assert {"model_name", "alias", "version", "eval_data_uri", "export_uri"} <= set(op.template_fields)


def test_refuses_an_unknown_container_backend() -> None:
    op = BentoPackageOperator(task_id="package", model_name="churn", container_backend="kaniko")
    with pytest.raises(PackagingError, match="container_backend='kaniko'"):
        op._backend_works("kaniko")


def test_importing_the_operator_imports_no_heavy_library() -> None:
    result = python_in_subprocess(
        "import sys, airflow_mlops_provider.operators.bentoml\n"
        "print(sorted(m for m in ('bentoml', 'mlflow', 'pandas', 'sklearn') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_store_entry_from_another_run_is_refused_and_one_from_the_same_run_reused():
    from types import SimpleNamespace

    from bentoml.exceptions import NotFound

    from airflow_mlops_provider.exceptions import PackagingError
    from airflow_mlops_provider.operators.bentoml import LABEL_RUN_ID, BentoPackageOperator

    entry = SimpleNamespace(info=SimpleNamespace(labels={LABEL_RUN_ID: "run-a"}))

    def missing(tag):
        raise NotFound(tag)

    find = BentoPackageOperator._existing_from_same_run
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
    from airflow_mlops_provider.exceptions import PackagingError
    from airflow_mlops_provider.operators.bentoml import merged_requirements

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
