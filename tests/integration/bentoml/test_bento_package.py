"""BentoPackageOperator against a real MLflow server, and the Bento it builds served over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_mlops_provider import lineage
from airflow_mlops_provider.exceptions import PackagingError
from airflow_mlops_provider.operators.bentoml import (
    LABEL_DATA_FINGERPRINT,
    LABEL_RUN_ID,
    BentoPackageOperator,
)
from mlops_demo.churn import FEATURES
from tests.integration.bentoml.conftest import FINGERPRINT, Registered, make_context

pytestmark = pytest.mark.integration


def store_contents() -> tuple[set[str], set[str]]:
    """Return the tags of every Bento and every model in the BentoML store."""
    import bentoml

    return {str(b.tag) for b in bentoml.list()}, {str(m.tag) for m in bentoml.models.list()}


def rows_of(registered: Registered, n: int) -> list[dict[str, Any]]:
    return json.loads(registered.eval_frame[FEATURES].head(n).to_json(orient="records"))


def pyfunc_predictions(registered: Registered, n: int) -> list[Any]:
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"models:/{registered.name}/{registered.version}")
    return model.predict(registered.eval_frame[FEATURES].head(n)).tolist()


def test_packaging_smoke_tests_exports_and_tags_the_version(
    packaged: dict[str, Any], registered: Registered, client: Any, export_dir: Path
) -> None:
    import bentoml

    assert packaged["bento_tag"] == f"{registered.name}:v{registered.version}"
    assert packaged["model_version"] == registered.version
    assert packaged["smoke_test"]["status"] == "passed"
    assert packaged["smoke_test"]["rows"] == 32
    archive = Path(packaged["archive_uri"])
    assert archive.parent == export_dir
    assert archive.is_file()
    assert archive.stat().st_size > 1000
    # No image builder configured: the generated Dockerfile is exported instead.
    assert packaged["image"] is None
    assert "bentoml" in Path(packaged["dockerfile_uri"]).read_text().lower()

    tags = client.get_model_version(registered.name, registered.version).tags
    assert tags[lineage.TAG_BENTO_TAG] == packaged["bento_tag"]
    assert tags[lineage.TAG_BENTO_ARCHIVE_URI] == packaged["archive_uri"]
    assert tags[lineage.TAG_BENTO_SMOKE_TEST] == "passed"

    bento = bentoml.get(packaged["bento_tag"])
    assert bento.info.labels[LABEL_RUN_ID] == registered.run_id
    assert bento.info.labels[LABEL_DATA_FINGERPRINT] == FINGERPRINT
    assert [str(m.tag) for m in bento.info.all_models] == [packaged["model_tag"]]
    assert bentoml.models.get(packaged["model_tag"]).info.labels[LABEL_RUN_ID] == registered.run_id


def test_served_bento_predicts_like_the_registry_pyfunc(served: str, registered: Registered) -> None:
    response = httpx.post(f"{served}/predict", json={"rows": rows_of(registered, 16)}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == pyfunc_predictions(registered, 16)


def test_served_bento_reports_its_lineage(served: str, registered: Registered) -> None:
    info = httpx.post(f"{served}/model_info", json={}, timeout=30).json()
    assert info["labels"][LABEL_RUN_ID] == registered.run_id
    assert info["labels"][LABEL_DATA_FINGERPRINT] == FINGERPRINT
    assert info["max_batch_size"] == 16


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(
            lambda rows: [{k: v for k, v in rows[0].items() if k != "tenure"}], "tenure", id="missing-field"
        ),
        pytest.param(
            lambda rows: [{**rows[0], "monthly_charges": "a lot"}], "monthly_charges", id="wrong-type"
        ),
        pytest.param(lambda rows: [{**rows[0], "tenure": 3.5}], "tenure", id="float-for-integer"),
        pytest.param(lambda rows: [{**rows[0], "churn_reason": "x"}], "churn_reason", id="unknown-field"),
        pytest.param(lambda rows: rows * 9, "rows", id="oversized-batch"),
    ],
)
def test_served_bento_answers_400_naming_the_bad_field(
    served: str, registered: Registered, mutate: Any, field: str
) -> None:
    rows = mutate(rows_of(registered, 2))
    response = httpx.post(f"{served}/predict", json={"rows": rows}, timeout=30)
    assert response.status_code == 400, response.text
    locations = [[str(part) for part in error["loc"]] for error in response.json()["detail"]]
    assert any(field in loc for loc in locations), locations


def _predict_count(metrics_text: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if (
                sample.name.endswith("request_total")
                and sample.labels.get("endpoint") == "/predict"
                and sample.labels.get("http_response_code") == "200"
            ):
                total += sample.value
    return total


def test_served_bento_is_ready_and_metrics_count_requests(served: str, registered: Registered) -> None:
    assert httpx.get(f"{served}/readyz", timeout=10).status_code == 200
    assert httpx.get(f"{served}/livez", timeout=10).status_code == 200
    before = _predict_count(httpx.get(f"{served}/metrics", timeout=10).text)
    for _ in range(5):
        assert (
            httpx.post(f"{served}/predict", json={"rows": rows_of(registered, 1)}, timeout=30).status_code
            == 200
        )
    after = _predict_count(httpx.get(f"{served}/metrics", timeout=10).text)
    assert after - before == 5


def test_repackaging_the_same_version_builds_no_second_bento(
    packaged: dict[str, Any],
    registered: Registered,
    export_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = store_contents()
    # An image builder is configured but absent here: the task says so and exports the Dockerfile.
    monkeypatch.setenv("PATH", str(tmp_path))
    again = BentoPackageOperator(
        task_id="package",
        model_name=registered.name,
        version=registered.version,
        export_uri=str(export_dir),
        smoke_test=False,
        container_backend="docker",
    ).execute(make_context())
    assert again["bento_tag"] == packaged["bento_tag"]
    assert again["archive_uri"] == packaged["archive_uri"]
    assert store_contents() == before
    assert sorted(p.name for p in export_dir.iterdir() if p.name.startswith(f"{registered.name}-v1.")) == [
        f"{registered.name}-v1.Dockerfile",
        f"{registered.name}-v1.bento",
    ]
    assert again["image"] is None
    assert Path(again["dockerfile_uri"]).is_file()


@pytest.fixture
def unimportable_version(client: Any, registered: Registered, tmp_path: Path) -> str:
    """Register a model version whose MLmodel has no python_function flavor."""
    import mlflow

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("artifact_path: model\nflavors:\n  onnx_like:\n    data: model.bin\n")
    (model_dir / "model.bin").write_bytes(b"\0" * 16)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model_dir), "weird")
    return str(
        client.create_model_version(
            registered.name, f"runs:/{run.info.run_id}/weird", run.info.run_id
        ).version
    )


def _not_ready(client: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from mlflow import MlflowClient

    real = MlflowClient.get_model_version

    def pending(self: Any, name: str, version: str) -> Any:
        mv = real(self, name, version)
        mv._status = "PENDING_REGISTRATION"
        return mv

    monkeypatch.setattr(MlflowClient, "get_model_version", pending)
    return {"version": "1"}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param("unknown-alias", "has no alias 'no-such-alias'", id="unknown-alias"),
        pytest.param("not-ready", "is PENDING_REGISTRATION, expected READY", id="not-ready"),
        pytest.param("unimportable-flavor", "'python_function' flavor only", id="unimportable-flavor"),
    ],
)
def test_packaging_refuses_and_leaves_the_store_as_it_was(
    request: pytest.FixtureRequest,
    packaged: dict[str, Any],
    registered: Registered,
    client: Any,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    message: str,
) -> None:
    kwargs: dict[str, Any] = {"alias": "no-such-alias"}
    if case == "not-ready":
        kwargs = _not_ready(client, monkeypatch)
    elif case == "unimportable-flavor":
        kwargs = {"version": request.getfixturevalue("unimportable_version")}
    before = store_contents()
    archives = set(export_dir.iterdir())
    op = BentoPackageOperator(
        task_id="package", model_name=registered.name, export_uri=str(export_dir), **kwargs
    )
    with pytest.raises(PackagingError, match=message):
        op.execute(make_context())
    assert store_contents() == before
    assert set(export_dir.iterdir()) == archives


def test_failed_smoke_test_removes_what_it_built(
    packaged: dict[str, Any],
    registered: Registered,
    client: Any,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bentoml
    import mlflow

    version = str(mlflow.register_model(registered.source, registered.name).version)
    before = store_contents()

    def differing(self: Any, tag: str, *args: Any) -> dict[str, Any]:
        # By now the model is imported and the Bento built: they must go again.
        assert tag in {str(b.tag) for b in bentoml.list()}
        raise PackagingError(f"smoke test failed: the Bento {tag} answered differently")

    monkeypatch.setattr(BentoPackageOperator, "run_smoke_test", differing)
    op = BentoPackageOperator(
        task_id="package", model_name=registered.name, version=version, export_uri=str(export_dir)
    )
    with pytest.raises(PackagingError, match="answered differently"):
        op.execute(make_context())
    assert store_contents() == before
    assert lineage.TAG_BENTO_TAG not in client.get_model_version(registered.name, version).tags
    assert not list(export_dir.glob(f"*-v{version}.bento"))


def test_overloaded_bento_sheds_requests_with_503_not_500_or_a_hang(
    packaged: dict[str, Any], registered: Registered, export_dir: Path, tmp_path: Path
) -> None:
    """A Bento whose latency budget (5 ms) cannot be met under 64 concurrent clients answers 503 at once."""
    import asyncio
    import os
    import sys

    import mlflow

    from airflow_mlops_provider.processes import free_port, start_process, wait_http

    version = str(mlflow.register_model(registered.source, registered.name).version)
    tight = BentoPackageOperator(
        task_id="package",
        model_name=registered.name,
        version=version,
        export_uri=str(export_dir),
        max_latency_ms=5,
        smoke_test=False,
    ).execute(make_context())
    port = free_port()
    log_path = tmp_path / "serve.log"
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        tight["bento_tag"],
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = start_process("bentoml-tight", command, os.environ, log_path)
    row = rows_of(registered, 1)

    async def hammer() -> list[int]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def client() -> list[int]:
                return [(await http.post("/predict", json={"rows": row})).status_code for _ in range(10)]

            return [code for codes in await asyncio.gather(*(client() for _ in range(64))) for code in codes]

    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 180, proc=proc, log_path=log_path)
        codes = asyncio.run(hammer())
    finally:
        proc.stop()
    assert len(codes) == 640
    assert set(codes) <= {200, 503}, sorted(set(codes))
    assert codes.count(503) > 0


def test_a_bento_pinning_a_package_with_a_known_advisory_is_not_deployable_until_allow_listed(
    packaged: dict[str, Any],
    registered: Registered,
    export_dir: Path,
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_mlops_provider import lineage, vulnerabilities
    from airflow_mlops_provider.exceptions import PackagingError
    from tests.unit.test_vulnerabilities import pip_audit_report

    audited: list[list[str]] = []

    def fake_audit(requirements: list[str], policy: Any) -> dict[str, Any]:
        audited.append(list(requirements))
        return pip_audit_report()  # the service is unreachable here: pip-audit's report of requests 2.25.1

    monkeypatch.setattr(vulnerabilities, "audit", fake_audit)

    def package(scan: Any) -> dict[str, Any]:
        return BentoPackageOperator(
            task_id="package",
            model_name=registered.name,
            version=registered.version,
            export_uri=str(export_dir),
            smoke_test=False,
            vulnerability_scan=scan,
        ).execute(make_context())

    before = store_contents()
    with pytest.raises(PackagingError, match=r"not deployable: .*refused requests==2\.25\.1 PYSEC-2023-74"):
        package(True)
    assert store_contents() == before
    # What was audited is the Bento's requirements, each pinned to this environment's version.
    assert audited[0]
    assert all("==" in line for line in audited[0])
    import importlib.metadata

    assert f"pandas=={importlib.metadata.version('pandas')}" in audited[0]

    allowed = package(
        {
            "allow": [
                {"id": "CVE-2023-32681", "expires": "2099-01-01", "reason": "no proxy in the serving path"}
            ]
        }
    )
    assert allowed["vulnerability_scan"]["status"] == "passed"
    assert allowed["vulnerability_scan"]["allowed"][0]["id"] == "PYSEC-2023-74"
    tags = client.get_model_version(registered.name, registered.version).tags
    assert tags[lineage.TAG_BENTO_VULNERABILITY_SCAN] == "passed"
