"""Every code block in README.md and docs/ is run, or checked as far as this machine allows.

- ``python`` blocks run, in order, one namespace per page and a fresh DAG context per block, in an
  empty working directory: imports, signatures and every check an operator makes when a DAG file
  is parsed (a typo'd gate, an unknown ``on_reject``) are exercised as a user's copy would be.
  A block that quotes a ``# [START name]`` region of a file under ``dags/`` or ``docs/examples/``
  must match it to the letter instead; those files run in the integration tests
  (``tests/integration/test_regression_example.py``, the reference-DAG tests).
- README's operator blocks form one pipeline: ``test_readme_pipeline`` runs them as one DAG with
  ``airflow dags test`` against a real MLflow server, data in place.
- ``yaml`` blocks load as gates, a data contract or a decay policy; ``json`` blocks parse (``...`` stands for
  elided values); ``bash`` blocks pass ``bash -n`` and the ``AIRFLOW_CONN_MLFLOW_DEFAULT`` exports
  build a working hook configuration. Commands that need a cluster, Docker or a registry (helm,
  kubectl, docker) are checked for syntax only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, TEST_STACK, python_in_subprocess

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
QUOTED_SOURCES = [*sorted((REPO / "dags").glob("*.py")), *sorted((REPO / "docs" / "examples").rglob("*.py"))]
_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    @property
    def is_dag_snippet(self) -> bool:
        return "task_id=" in self.text or "group_id=" in self.text


def blocks(page: Path) -> list[Block]:
    found, lang, start, lines = [], None, 0, []
    for number, line in enumerate(page.read_text().splitlines(), 1):
        match = _FENCE.match(line.strip()) if line.startswith("```") else None
        if lang is None and match:
            lang, start, lines = match.group(1), number, []
        elif lang is not None and line.startswith("```"):
            found.append(Block(page, start, lang, "\n".join(lines) + "\n"))
            lang = None
        elif lang is not None:
            lines.append(line)
    assert lang is None, f"{page}: the block opened at line {start} is never closed"
    return found


ALL = [b for page in PAGES for b in blocks(page)]
PYTHON_PAGES = sorted({b.page for b in ALL if b.lang == "python"})


def _region(name: str) -> str | None:
    pattern = re.compile(
        rf"^([ \t]*)# \[START {re.escape(name)}\]\n(.*?)^[ \t]*# \[END {re.escape(name)}\]", re.M | re.S
    )
    for source in QUOTED_SOURCES:
        match = pattern.search(source.read_text())
        if match:
            indent = match.group(1)
            return "\n".join(line.removeprefix(indent) for line in match.group(0).splitlines()) + "\n"
    return None


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=[str(p.relative_to(REPO)) for p in PYTHON_PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    from airflow.sdk import DAG

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in (b for b in blocks(page) if b.lang == "python"):
        if block.page.name == "README.md" and block.is_dag_snippet:
            continue  # run for real by test_readme_pipeline
        start = re.search(r"# \[START (\S+)\]", block.text)
        if start and (quoted := _region(start.group(1))) is not None:
            # A quote of a file that the integration tests run: it must say what the file says.
            assert block.text == quoted, f"{block.id} differs from the region it quotes"
            continue
        with DAG(dag_id=f"docs_{block.line}", schedule=None, start_date=datetime(2026, 1, 1)):
            try:
                exec(compile(block.text, block.id, "exec"), namespace)
            except Exception as err:
                pytest.fail(f"{block.id} raised {type(err).__name__}: {err}")


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "yaml"], ids=lambda b: b.id)
def test_yaml_blocks_load_as_gates_a_contract_or_a_decay_policy(block):
    import yaml

    from airflow_mlops_provider.data.contract import DataContract
    from airflow_mlops_provider.gates import PromotionGates
    from airflow_mlops_provider.monitoring.decay import DecayPolicy

    data = yaml.safe_load(block.text)
    if "columns" in data:
        assert DataContract.from_yaml(block.text).columns
    elif "metric" in data:
        assert DecayPolicy.from_yaml(block.text).metrics
    else:
        assert PromotionGates.from_yaml(block.text).metrics


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "json"], ids=lambda b: b.id)
def test_json_blocks_parse(block):
    text = re.sub(r"\{\s*(\.\.\.|…)\s*\}", "{}", block.text)
    text = re.sub(r'"(\.\.\.|…)"|(?<=[:\s])(\.\.\.|…)(?=[,}\]\s])', '"..."', text)
    assert isinstance(json.loads(text), dict)


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "bash"], ids=lambda b: b.id)
def test_bash_blocks_are_valid_shell(block):
    result = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


CONNECTION_EXPORTS = [b for b in ALL if b.lang == "bash" and "export AIRFLOW_CONN_MLFLOW_DEFAULT=" in b.text]


@pytest.mark.parametrize("block", CONNECTION_EXPORTS, ids=lambda b: b.id)
def test_connection_exports_configure_the_hook(block):
    # Each export in the block replaces the one before: check every one of them.
    for part in re.split(r"(?m)^(?=export AIRFLOW_CONN_MLFLOW_DEFAULT=)", block.text):
        if not part.startswith("export"):
            continue
        value = subprocess.run(
            ["bash", "-c", part + '\nprintf "%s" "$AIRFLOW_CONN_MLFLOW_DEFAULT"'],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        code = (
            "import os, sys; os.environ['AIRFLOW_CONN_MLFLOW_DEFAULT'] = sys.argv[1]\n"
            "from airflow_mlops_provider.hooks.mlflow import MlflowHook\n"
            "print(MlflowHook().tracking_uri)"
        )
        result = python_in_subprocess(code, value)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip().splitlines()[-1].startswith(("http://", "https://", "sqlite:")), (
            result.stdout
        )


# --- README's pipeline, for real ----------------------------------------------------------------

README_DAG = """
from datetime import datetime, timedelta

from airflow.sdk import DAG

with DAG(
    dag_id="readme_pipeline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    default_args={{"retries": 0, "execution_timeout": timedelta(minutes=20)}},
):
{body}
"""


@pytest.mark.integration
@pytest.mark.timeout(1200)
def test_readme_pipeline(airflow_db, mlflow_conn, tmp_path, monkeypatch):
    """The README's data gates, training, promotion and packaging blocks, as one DAG, for real."""
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from mlops_demo.churn import write_week

    snippets = [b for b in blocks(REPO / "README.md") if b.lang == "python" and b.is_dag_snippet]
    assert len(snippets) >= 2, "README's operator examples went missing"
    work = tmp_path / "work"
    for name, seed in (("train", 1), ("eval", 2)):
        frame_path = write_week(work / "data" / f"{name}-full.csv", "baseline", rows=3000, seed=seed, week=1)
        import pandas as pd

        pd.read_csv(frame_path).drop(columns=["customer_id"]).to_csv(
            work / "data" / f"{name}.csv", index=False
        )
        frame_path.unlink()
    (work / "contracts").mkdir()
    (work / "contracts" / "churn.yaml").write_text(
        "name: churn\nmin_rows: 500\ncolumns:\n  churned: {dtype: integral, min_value: 0, max_value: 1}\n"
    )
    dags = tmp_path / "dags"
    dags.mkdir()
    body = "\n".join(b.text for b in snippets)
    (dags / "readme_pipeline.py").write_text(
        README_DAG.format(body="\n".join(f"    {line}" if line else "" for line in body.splitlines()))
    )
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "MLOPS_HOME": str(tmp_path / "home"),
    }
    result = subprocess.run(
        [str(TEST_STACK.bin_dir / "airflow"), "dags", "test", "readme_pipeline"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert "[error" not in log, [line for line in log.splitlines() if "[error" in line][:5]
    client = MlflowHook().get_client()
    champion = client.get_model_version_by_alias("churn", "champion")
    assert (
        client.get_model_version("churn", champion.version).tags["mlops.bento.tag"]
        == f"churn:v{champion.version}"
    )
