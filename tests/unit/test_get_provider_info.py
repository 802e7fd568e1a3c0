from __future__ import annotations

import importlib
import subprocess
from importlib.metadata import entry_points

import pytest

from airflow_mlops_provider.get_provider_info import get_provider_info
from tests.conftest import TEST_STACK


def _class(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_entry_point_returns_the_provider_info():
    (ep,) = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_mlops")
    ]
    info = ep.load()()
    assert info["package-name"] == "airflow-mlops-provider"
    assert info == get_provider_info()


def _listed_modules() -> list[str]:
    info = get_provider_info()
    return [
        m
        for kind in ("hooks", "operators", "sensors", "triggers")
        for i in info[kind]
        for m in i["python-modules"]
    ]


def _listed_classes() -> list[str]:
    info = get_provider_info()
    return [c["hook-class-name"] for c in info["connection-types"]] + list(info["extra-links"])


@pytest.mark.parametrize("module", _listed_modules())
def test_every_listed_module_imports(module):
    assert importlib.import_module(module).__name__ == module


@pytest.mark.parametrize("path", _listed_classes())
def test_every_listed_class_imports(path):
    assert _class(path).__name__ == path.rpartition(".")[2]


def test_connection_types_match_their_hooks():
    for conn in get_provider_info()["connection-types"]:
        hook = _class(conn["hook-class-name"])
        assert hook.conn_type == conn["connection-type"]
        assert hook.hook_name == conn["hook-name"]


def test_airflow_lists_the_provider_and_its_connection_type():
    result = subprocess.run(
        [str(TEST_STACK.bin_dir / "airflow"), "providers", "list", "--output", "plain"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "airflow-mlops-provider" in result.stdout
    hooks = subprocess.run(
        [str(TEST_STACK.bin_dir / "airflow"), "providers", "hooks", "--output", "plain"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = next(line for line in hooks.stdout.splitlines() if "MlflowHook" in line)
    assert line.split()[0] == "mlflow"
