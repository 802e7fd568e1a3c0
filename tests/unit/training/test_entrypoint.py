"""Loading the entrypoint: what the error says when its module, or something it imports, is missing."""

from __future__ import annotations

import uuid

import pytest

from airflow_mlops_provider.training.runner import RunnerInputError, load_entrypoint


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A folder on the import path, as the DAG file's folder is for the local runtime."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_missing_module_error_says_where_it_looked_and_where_the_module_must_live(folder):
    name = unique("diabetes_train")
    with pytest.raises(RunnerInputError) as info:
        load_entrypoint(f"{name}:train")
    message = str(info.value)
    assert message.startswith(f"entrypoint '{name}:train': module '{name}' not found; searched [")
    assert repr(str(folder)) in message
    assert f"put {name}.py (or the package {name}/) beside the DAG file" in message
    assert "local_cwd=" in message
    assert "PYTHONPATH" in message
    assert "installed in the trainer image" in message


def test_missing_submodule_of_a_package_is_the_entrypoint_missing(folder):
    package = unique("pipelines")
    (folder / package).mkdir()
    (folder / package / "__init__.py").write_text("")
    with pytest.raises(RunnerInputError, match=rf"module '{package}\.train' not found; searched"):
        load_entrypoint(f"{package}.train:fit")


def test_missing_dependency_of_the_module_is_named_as_such(folder):
    name, dependency = unique("my_train"), unique("not_installed")
    (folder / f"{name}.py").write_text(f"import {dependency}\n\n\ndef train(data):\n    return None\n")
    with pytest.raises(RunnerInputError) as info:
        load_entrypoint(f"{name}:train")
    message = str(info.value)
    assert message.startswith(
        f"entrypoint '{name}:train': importing '{name}' failed: it imports '{dependency}'"
    )
    assert "which is not installed" in message
    assert "in the trainer image" in message
    # The module itself was found: the error must not send anyone looking for it.
    assert "not found;" not in message
    assert "beside the DAG file" not in message


def test_module_beside_the_dag_file_loads(folder):
    name = unique("my_train")
    (folder / f"{name}.py").write_text("def train(data):\n    return 'fitted'\n")
    assert load_entrypoint(f"{name}:train")(None) == "fitted"  # type: ignore[arg-type]
