"""OpenLineage dataset names for the URIs the operators read and write."""

from __future__ import annotations

import os

import pytest

from airflow_mlops_provider.openlineage import OpenLineageMixin, bento_uri, dataset_name, model_version_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param("/data/week1.csv", ("file", "/data/week1.csv"), id="path"),
        pytest.param("file:///data/a%20b.csv", ("file", "/data/a b.csv"), id="file-uri"),
        pytest.param("s3://lake/churn/week=1/", ("s3://lake", "churn/week=1/"), id="s3"),
        pytest.param("runs:/abc/model", ("http://mlflow:5000", "runs:/abc/model"), id="mlflow-run"),
        pytest.param(
            model_version_uri("churn", 3), ("http://mlflow:5000", "models:/churn/3"), id="model-version"
        ),
        pytest.param(bento_uri("churn:v3"), ("bentoml", "churn:v3"), id="bento"),
    ],
)
def test_uris_are_named_by_the_openlineage_naming_spec(uri, expected):
    assert dataset_name(uri, "http://mlflow:5000") == expected


def test_a_relative_path_is_named_absolutely():
    assert dataset_name("data/x.csv") == ("file", os.path.abspath("data/x.csv"))


def test_recorded_uris_become_the_tasks_inputs_and_outputs_once_each():
    class Task(OpenLineageMixin):
        pass

    task = Task()
    task.record_lineage(inputs=["/d/a.csv", None, "/d/a.csv"], outputs=[model_version_uri("m", 1)])
    task.record_lineage(outputs=[bento_uri("m:v1")])
    lineage = task.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", "/d/a.csv")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("mlflow", "models:/m/1"),
        ("bentoml", "m:v1"),
    ]
