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


def test_importing_the_operator_imports_no_heavy_library() -> None:
    result = python_in_subprocess(
        "import sys, airflow_mlops_provider.operators.bentoml\n"
        "print(sorted(m for m in ('bentoml', 'mlflow', 'pandas', 'sklearn') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
