"""Every DAG in dags/ parses cleanly, cheaply, and carries what operations needs.

Each file is parsed in a fresh interpreter, as the DAG processor does, with connection and
variable look-ups made to fail, so the modules it imports and the look-ups it makes are its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, python_in_subprocess

DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY_MODULES = ("mlflow", "whylogs", "bentoml", "sklearn", "pandas")
#: Provider modules only a running task needs: the hook (which builds its settings class on import),
#: the data, registry, storage, serving and training machinery. Parsing pays for none of them.
#: (``gates`` is not among them: gates written literally in a DAG file are checked when it is parsed,
#: so that a typo is an import error; the module is standard library at import.)
TASK_TIME_MODULES = (
    "airflow_mlops_provider.hooks.mlflow",
    "airflow_mlops_provider.data",
    "airflow_mlops_provider.decisions",
    "airflow_mlops_provider.evidence",
    "airflow_mlops_provider.monitoring",
    "airflow_mlops_provider.promotion",
    "airflow_mlops_provider.serving",
    "mlops_demo.stack",
    "airflow_mlops_provider.storage",
    "airflow_mlops_provider.training",
)

PARSE_SCRIPT = """
import json, sys
from airflow.sdk import BaseHook, Connection, Variable
from airflow.dag_processing.dagbag import DagBag

lookups = []
def forbidden(kind):
    def look_up(*args, **kwargs):
        lookups.append(f"{kind} {args[-1]}")
        raise RuntimeError(f"{kind} looked up while parsing")
    return look_up

BaseHook.get_connection = classmethod(forbidden("connection"))
Connection.get = classmethod(forbidden("connection"))
Variable.get = staticmethod(forbidden("variable"))
before = set(sys.modules)
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
new = set(sys.modules) - before
dags = {
    dag_id: {
        "tags": sorted(dag.tags),
        "tasks": {
            t.task_id: {"retries": t.retries, "execution_timeout": str(t.execution_timeout or "")}
            for t in dag.tasks
        },
    }
    for dag_id, dag in bag.dags.items()
}
print(json.dumps({
    "import_errors": {str(k): v for k, v in bag.import_errors.items()},
    "dags": dags,
    "lookups": lookups,
    "heavy": sorted({m.split(".")[0] for m in new} & set(sys.argv[2].split(","))),
    "provider_modules": sorted(m for m in new if m.partition(".")[0] == "airflow_mlops_provider"),
}))
"""


def _parse(path: Path) -> dict:
    result = python_in_subprocess(PARSE_SCRIPT, str(path), ",".join(HEAVY_MODULES))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=DAG_FILES, ids=[p.name for p in DAG_FILES])
def parsed(request) -> dict:
    return _parse(request.param)


def test_dag_folder_is_not_empty():
    assert DAG_FILES


def test_file_imports_without_errors_or_cycles(parsed):
    assert parsed["import_errors"] == {}
    assert parsed["dags"], "the file defines no DAG"


def test_parsing_looks_up_no_connection_or_variable(parsed):
    assert parsed["lookups"] == []


def test_parsing_imports_no_heavy_library(parsed):
    assert parsed["heavy"] == []


def test_parsing_imports_no_task_time_provider_module(parsed):
    task_time = [m for m in parsed["provider_modules"] if m.startswith(TASK_TIME_MODULES)]
    assert task_time == []


def test_every_dag_is_tagged(parsed):
    for dag_id, dag in parsed["dags"].items():
        assert dag["tags"], f"{dag_id} has no tags"


def test_every_task_has_retries_and_an_execution_timeout(parsed):
    for dag_id, dag in parsed["dags"].items():
        for task_id, task in dag["tasks"].items():
            assert task["execution_timeout"], f"{dag_id}.{task_id} has no execution_timeout"
            assert task["retries"] is not None, f"{dag_id}.{task_id} has no retries setting"


def test_the_check_itself_catches_a_heavy_import_and_a_lookup(tmp_path):
    bad = tmp_path / "bad_dag.py"
    bad.write_text(
        "import pandas\n"
        "import airflow_mlops_provider.hooks.mlflow\n"
        "from airflow.sdk import DAG, BaseHook\n"
        "BaseHook.get_connection('mlflow_default')\n"
        "DAG('bad')\n"
    )
    parsed = _parse(bad)
    assert parsed["heavy"] == ["pandas"]
    assert "airflow_mlops_provider.hooks.mlflow" in parsed["provider_modules"]
    assert parsed["lookups"] == ["connection mlflow_default"]


@pytest.mark.parametrize(
    ("gates", "model_kind", "message"),
    [
        pytest.param(
            '{"thresholds": ["RMSE <= 60"]}', None, "unknown metric 'RMSE' (did you mean 'rmse'?)", id="typo"
        ),
        pytest.param(
            '{"thresholds": ["accuracy >= 0.0"]}',
            '"regression"',
            "gate 'thresholds: accuracy >= 0' reads 'accuracy', a classification metric, but the model is "
            "a regression model (model_kind=); regression metrics: mae, r2, rmse",
            id="wrong-kind",
        ),
    ],
)
def test_a_literal_gate_that_cannot_work_is_an_import_error_of_the_dag_file(
    tmp_path, gates, model_kind, message
):
    dag_file = tmp_path / "typo_dag.py"
    dag_file.write_text(
        "from airflow.sdk import DAG\n"
        "from airflow_mlops_provider.operators.registry import ModelPromotionOperator\n"
        "with DAG('typo', schedule=None):\n"
        "    ModelPromotionOperator(task_id='promote', candidate='{{ ti.xcom_pull(task_ids=\"train\") }}',\n"
        "        registered_model_name='diabetes', eval_data_uri='eval.csv', target_column='y',\n"
        f"        gates={gates}, model_kind={model_kind})\n"
    )
    parsed = _parse(dag_file)
    assert parsed["dags"] == {}
    (error,) = parsed["import_errors"].values()
    assert message in error
