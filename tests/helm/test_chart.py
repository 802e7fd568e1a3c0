"""The Helm chart, rendered offline with helm-python-sdk and checked object by object.

Every rendered object is validated strictly against the Kubernetes OpenAPI schema of the two newest
minor versions kubernetes-validate ships; the assertions then read the objects, not strings. The
Airflow dependency stays off: the official chart cannot be fetched here.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.helm

CHART = REPO / "helm" / "airflow-mlops"
PRODUCTION = yaml.safe_load((CHART / "values-production.yaml").read_text())


def _k8s_versions() -> list[str]:
    from kubernetes_validate import utils

    return sorted(
        {utils.major_minor(v) for v in utils.all_versions()}, key=lambda v: tuple(map(int, v.split(".")))
    )[-2:]


K8S_VERSIONS = _k8s_versions()


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    import helm_python

    chart = helm_python.Chart.load(CHART)
    merged = {**(values or {}), "airflow": {**(values or {}).get("airflow", {}), "enabled": False}}
    manifests = chart.render(merged, name="mlops", namespace="airflow")
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict], kind: str, name_part: str = "") -> dict:
    (found,) = [o for o in by_kind(objects, kind) if name_part in o["metadata"]["name"]]
    return found


def render_valid(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Render, and validate every object strictly against both Kubernetes versions."""
    from kubernetes_validate import validate

    objects = render(values)
    for obj in objects:
        for version in K8S_VERSIONS:
            validate(obj, version, strict=True)
    return objects


def pod_specs(objects: list[dict]) -> list[tuple[str, dict]]:
    return [
        (o["metadata"]["name"], o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
    ]


@pytest.fixture(scope="module", params=["default", "production"])
def rendered(request) -> list[dict]:
    return render(None if request.param == "default" else PRODUCTION)


def test_the_two_newest_kubernetes_versions_are_checked():
    assert len(K8S_VERSIONS) == 2


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_strictly(rendered, version):
    from kubernetes_validate import validate

    assert len(rendered) >= 15
    for obj in rendered:
        validate(obj, version, strict=True)


def test_lint_is_clean(tmp_path):
    import helm_python

    # helm lint refuses a chart whose dependency is not vendored; lint everything else.
    copy = tmp_path / "airflow-mlops"
    shutil.copytree(CHART, copy)
    meta = yaml.safe_load((copy / "Chart.yaml").read_text())
    meta.pop("dependencies")
    (copy / "Chart.yaml").write_text(yaml.safe_dump(meta))
    for values in ({}, {k: v for k, v in PRODUCTION.items() if k != "airflow"}):
        report = helm_python.lint(copy, values, strict=True)
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_every_workload_passes_the_restricted_pod_security_standard(rendered):
    specs = pod_specs(rendered)
    assert {name.rsplit("-", 1)[-1] for name, _ in specs} >= {"mlflow", "modelserver"}
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"], name
            repository, _, tag = container["image"].rpartition(":")
            assert repository, container["image"]
            assert tag not in ("", "latest"), container["image"]


def test_training_namespace_enforces_restricted_pods():
    namespace = one(render(), "Namespace")
    assert namespace["metadata"]["name"] == "mlops-training"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_pod_launcher_role_grants_only_what_kubernetes_pod_operator_needs(rendered):
    role = one(rendered, "Role", "pod-launcher")
    assert role["metadata"]["namespace"] == "mlops-training"
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        (("",), ("pods",)): {"create", "get", "list", "watch", "delete", "patch"},
        (("",), ("pods/log",)): {"get", "list"},
        (("",), ("events",)): {"get", "list", "watch"},
    }
    binding = one(rendered, "RoleBinding", "pod-launcher")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "airflow-worker", "namespace": "airflow"}
    ]
    assert one(rendered, "ServiceAccount")["automountServiceAccountToken"] is False


@pytest.mark.parametrize(("resource", "expected"), [("nvidia.com/gpu", "4"), ("amd.com/gpu", "4")])
def test_resource_quota_caps_gpu_requests(resource, expected):
    quota = one(render({"training": {"gpuResource": resource}}), "ResourceQuota")
    assert quota["spec"]["hard"][f"requests.{resource}"] == expected
    assert {"requests.cpu", "requests.memory", "pods"} <= quota["spec"]["hard"].keys()


def test_limit_range_and_priority_class(rendered):
    limits = one(rendered, "LimitRange")["spec"]["limits"][0]
    assert limits["type"] == "Container"
    assert limits["defaultRequest"]["cpu"]
    assert limits["default"]["memory"]
    priority = one(rendered, "PriorityClass")
    assert priority["value"] < 0
    assert priority["preemptionPolicy"] == "Never"


def test_training_namespace_denies_by_default_and_opens_only_dns_and_mlflow(rendered):
    deny = one(rendered, "NetworkPolicy", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    egress = one(rendered, "NetworkPolicy", "training-egress")["spec"]["egress"]
    ports = [{(p["protocol"], p["port"]) for p in rule["ports"]} for rule in egress]
    assert ports == [{("UDP", 53), ("TCP", 53)}, {("TCP", 5000)}]
    mlflow_peer = egress[1]["to"][0]["podSelector"]["matchLabels"]
    assert mlflow_peer["app.kubernetes.io/component"] == "mlflow"


def test_object_store_cidrs_open_egress_on_443_only():
    egress = one(render({"training": {"egressCIDRs": ["10.20.0.0/16"]}}), "NetworkPolicy", "training-egress")[
        "spec"
    ]["egress"]
    assert egress[2] == {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    }


def test_model_server_probes_autoscaling_disruption_budget_and_scraping(rendered):
    deployment = one(rendered, "Deployment", "modelserver")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "3000",
        "prometheus.io/path": "/metrics",
    }
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    hpa = one(rendered, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = one(rendered, "PodDisruptionBudget")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = one(rendered, "Service", "modelserver")
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_mlflow_server_probes_and_backend_store_from_secrets(rendered):
    deployment = one(rendered, "Deployment", "mlflow")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    env = {e["name"]: e for e in container["env"]}
    uri = env["MLFLOW_BACKEND_STORE_URI"]
    assert "$(MLFLOW_BACKEND_STORE_URI)" in " ".join(container["args"])
    if "valueFrom" in uri:  # production: the whole URI is a secret
        assert uri["valueFrom"]["secretKeyRef"] == {"name": "mlflow-backend-db", "key": "uri"}
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-s3-credentials"
    else:  # bundled PostgreSQL: the password comes from its Secret, never inline
        assert "$(POSTGRES_PASSWORD)" in uri["value"]
        assert "valueFrom" in env["POSTGRES_PASSWORD"]


def test_no_plain_text_password_in_any_container_env(rendered):
    for name, spec in pod_specs(rendered):
        for container in spec["containers"]:
            for var in container.get("env", []):
                if any(word in var["name"].upper() for word in ("PASSWORD", "SECRET", "TOKEN", "SALT")):
                    assert "valueFrom" in var, (name, var["name"])


def test_bundled_postgresql_only_when_asked():
    assert by_kind(render(), "StatefulSet")
    assert not by_kind(render(PRODUCTION), "StatefulSet")


@pytest.mark.parametrize(
    ("values", "extra"),
    [({}, {}), (PRODUCTION, {"kubernetes_secret_name": "mlflow-credentials"})],
    ids=["default", "production"],
)
def test_mlflow_connection_secret_for_airflow(values, extra):
    secret = one(render(values), "Secret", "mlflow-connection")
    conn = json.loads(secret["stringData"]["AIRFLOW_CONN_MLFLOW_DEFAULT"])
    assert conn["conn_type"] == "mlflow"
    assert conn["host"] == "mlops-airflow-mlops-mlflow.airflow.svc"
    assert conn["port"] == 5000
    assert conn["extra"] == extra


def test_production_values_use_external_tls_databases_and_static_keys():
    airflow = PRODUCTION["airflow"]
    assert airflow["postgresql"]["enabled"] is False
    assert airflow["data"]["metadataSecretName"]
    assert airflow["fernetKeySecretName"]
    assert airflow["apiSecretKeySecretName"]
    assert PRODUCTION["postgresql"]["enabled"] is False
    assert "sslmode=verify-full" in (CHART / "values-production.yaml").read_text()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"modelserver": {"image": {"tag": "latest"}}}, "/modelserver/image/tag", id="latest-tag"
        ),
        pytest.param({"mlflow": {"replicsa": 2}}, "additional properties 'replicsa' not allowed", id="typo"),
        pytest.param(
            {"training": {"quota": {"requestsGpu": 4}}},
            "/training/quota/requestsGpu': got number, want string",
            id="gpu-quota-type",
        ),
        pytest.param({"airflow": {"executor": "SequentialExecutor"}}, "/airflow/executor", id="executor"),
        pytest.param({"modelserver": {"service": {"port": 70000}}}, "/modelserver/service/port", id="port"),
        pytest.param(
            {"modelserver": {"capture": {"sampleRate": 1.5}}},
            "/modelserver/capture/sampleRate': maximum: got 1.5, want 1",
            id="capture-sample-rate",
        ),
        pytest.param(
            {"modelserver": {"capture": {"flushIntervalSeconds": 0}}},
            "/modelserver/capture/flushIntervalSeconds': exclusiveMinimum",
            id="capture-flush-interval",
        ),
        pytest.param(
            {"modelserver": {"capture": {"maxBufferRows": 0}}},
            "/modelserver/capture/maxBufferRows': minimum",
            id="capture-buffer",
        ),
        pytest.param(
            {"modelserver": {"capture": {"dropColumns": ["email,phone"]}}},
            "/modelserver/capture/dropColumns/0': 'email,phone' does not match pattern",
            id="capture-column-with-comma",
        ),
        pytest.param(
            {"modelserver": {"capture": {"persistence": {"accessModes": ["ReadOnlyMany"]}}}},
            "/modelserver/capture/persistence/accessModes/0': value must be one of",
            id="capture-access-mode",
        ),
        pytest.param(
            {"modelserver": {"capture": {"persistence": {"size": "10GB"}}}},
            "/modelserver/capture/persistence/size",
            id="capture-size",
        ),
    ],
)
def test_bad_values_are_rejected_by_the_schema_naming_the_key(values, message):
    import helm_python

    chart = helm_python.Chart.load(CHART)
    with pytest.raises(helm_python.HelmValuesError, match=message):
        chart.validate_schema(values)


def test_capture_sample_rate_out_of_range_fails_rendering_too():
    import helm_python

    with pytest.raises(helm_python.HelmError, match="'/modelserver/capture/sampleRate': maximum"):
        render({"modelserver": {"capture": {"sampleRate": 1.5}}})


def test_an_empty_image_tag_fails_rendering_too():
    import helm_python

    with pytest.raises(helm_python.HelmError, match="'/modelserver/image/tag': minLength"):
        render({"modelserver": {"image": {"tag": ""}}})


def test_values_schema_is_generated_from_values_yaml():
    spec = importlib.util.spec_from_file_location(
        "generate_schema", REPO / "helm" / "tools" / "generate_schema.py"
    )
    assert spec
    assert spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    text = (CHART / "values.yaml").read_text()
    described = generator.comments(text.splitlines())
    values = yaml.safe_load(text)
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(value: Any, node: dict, path: tuple[str, ...]) -> None:
        assert node["default"] == value, f"{'.'.join(path)}: schema default differs from values.yaml"
        assert node["description"], ".".join(path)
        free = any(path[:i] in generator.FREE for i in range(1, len(path) + 1))
        if not free and path[-1] not in generator.CHILD_NAMES:
            assert path in described, f"values.yaml key {'.'.join(path)} has no '# --' comment"
        if isinstance(value, dict) and not free:
            for key, child in value.items():
                walk(child, node["properties"][key], (*path, key))

    for key, value in values.items():
        walk(value, schema["properties"][key], (key,))


CAPTURE_DIR = "/var/lib/mlops/capture"


def model_server(objects: list[dict]) -> tuple[dict, dict]:
    """The model server's pod spec and its container."""
    spec = one(objects, "Deployment", "modelserver")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return spec, container


def capture_env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"] if e["name"].startswith("MLOPS_CAPTURE_")}


def test_model_server_captures_to_a_pvc_mounted_at_the_capture_dir(rendered):
    spec, container = model_server(rendered)
    env = capture_env(container)
    assert {k: v["value"] for k, v in env.items()} == {
        "MLOPS_CAPTURE_ENABLED": "true",
        "MLOPS_CAPTURE_URI": CAPTURE_DIR,
        "MLOPS_CAPTURE_SAMPLE_RATE": "1",
        "MLOPS_CAPTURE_FLUSH_ROWS": "1000",
        "MLOPS_CAPTURE_FLUSH_INTERVAL_S": "10",
        "MLOPS_CAPTURE_MAX_BUFFER_ROWS": "100000",
    }
    claim = one(rendered, "PersistentVolumeClaim", "capture")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in claim["spec"]  # the cluster default
    assert claim["metadata"]["labels"]["app.kubernetes.io/component"] == "modelserver"
    assert claim["metadata"]["labels"]["app.kubernetes.io/part-of"] == "airflow-mlops"
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts[CAPTURE_DIR]]["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "envFrom" not in container


@pytest.mark.parametrize(
    ("persistence", "claim"),
    [
        pytest.param({"storageClass": "nfs-rwx", "accessModes": ["ReadWriteMany"]}, None, id="rwx-class"),
        pytest.param({"existingClaim": "shared-capture"}, "shared-capture", id="existing-claim"),
    ],
)
def test_capture_claim_can_be_shared_or_brought(persistence, claim):
    objects = render_valid({"modelserver": {"capture": {"persistence": persistence}}})
    spec, _ = model_server(objects)
    claim_name = {v["name"]: v for v in spec["volumes"]}["capture"]["persistentVolumeClaim"]["claimName"]
    claims = by_kind(objects, "PersistentVolumeClaim")
    if claim:  # brought: mounted, not created
        assert claims == []
        assert claim_name == claim
    else:
        assert [c["metadata"]["name"] for c in claims] == [claim_name]
        assert claims[0]["spec"]["storageClassName"] == "nfs-rwx"
        assert claims[0]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_object_store_capture_has_no_pvc_and_takes_credentials_from_a_secret():
    objects = render_valid(
        {
            "modelserver": {
                "capture": {
                    "uri": "s3://company-capture/churn",
                    "credentialsSecretName": "capture-s3-credentials",
                    "sampleRate": 0.25,
                    "flushIntervalSeconds": 2.5,
                    "dropColumns": ["email", "phone"],
                }
            }
        }
    )
    assert by_kind(objects, "PersistentVolumeClaim") == []
    spec, container = model_server(objects)
    env = capture_env(container)
    assert env["MLOPS_CAPTURE_URI"]["value"] == "s3://company-capture/churn"
    assert env["MLOPS_CAPTURE_SAMPLE_RATE"]["value"] == "0.25"
    assert env["MLOPS_CAPTURE_FLUSH_INTERVAL_S"]["value"] == "2.5"
    assert env["MLOPS_CAPTURE_DROP_COLUMNS"]["value"] == "email,phone"
    assert "MLOPS_CAPTURE_HASH_COLUMNS" not in env  # unset: the Bento keeps its packaged list
    assert container["envFrom"] == [{"secretRef": {"name": "capture-s3-credentials"}}]
    assert [v["name"] for v in spec["volumes"]] == ["tmp"]
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]


def test_capture_hash_salt_comes_from_a_secret_key_ref():
    objects = render_valid(
        {
            "modelserver": {
                "capture": {
                    "hashColumns": ["customer_id", "email"],
                    "hashSaltSecret": {"name": "capture-salt", "key": "hmac-key"},
                }
            }
        }
    )
    env = capture_env(model_server(objects)[1])
    assert env["MLOPS_CAPTURE_HASH_COLUMNS"]["value"] == "customer_id,email"
    assert env["MLOPS_CAPTURE_HASH_SALT"] == {
        "name": "MLOPS_CAPTURE_HASH_SALT",
        "valueFrom": {"secretKeyRef": {"name": "capture-salt", "key": "hmac-key"}},
    }
    # Not in the default render: no salt unless a Secret is named.
    assert "MLOPS_CAPTURE_HASH_SALT" not in capture_env(model_server(render())[1])


def test_capture_off_sets_enabled_false_and_drops_the_rest():
    # Nowhere to write is fine when capture is off.
    objects = render_valid(
        {"modelserver": {"capture": {"enabled": False, "persistence": {"enabled": False}}}}
    )
    spec, container = model_server(objects)
    assert capture_env(container) == {
        "MLOPS_CAPTURE_ENABLED": {"name": "MLOPS_CAPTURE_ENABLED", "value": "false"}
    }
    assert by_kind(objects, "PersistentVolumeClaim") == []
    assert not [c for c in by_kind(objects, "ConfigMap") if "capture" in c["metadata"]["name"]]
    assert [v["name"] for v in spec["volumes"]] == ["tmp"]
    assert "envFrom" not in container


@pytest.mark.parametrize(
    ("capture", "message"),
    [
        pytest.param(
            {"persistence": {"enabled": False}},
            "modelserver.capture is enabled but has nowhere to write: set modelserver.capture.uri",
            id="neither-pvc-nor-uri",
        ),
        pytest.param(
            {"uri": "/data/capture"},
            'modelserver.capture.uri "/data/capture" is a local path',
            id="local-path",
        ),
        pytest.param(
            {"dropColumns": ["email"], "hashColumns": ["email", "phone"]},
            r"columns \[email\] are in both dropColumns and hashColumns",
            id="dropped-and-hashed",
        ),
    ],
)
def test_capture_that_cannot_work_fails_rendering_saying_why(capture, message):
    import helm_python

    with pytest.raises(helm_python.HelmError, match=message):
        render({"modelserver": {"capture": capture}})


@pytest.mark.parametrize(
    ("capture", "uri"),
    [({}, CAPTURE_DIR), ({"uri": "gs://company-capture/churn"}, "gs://company-capture/churn")],
    ids=["pvc", "object-store"],
)
def test_airflow_loads_the_capture_uri_the_model_server_writes_to(capture, uri):
    objects = render_valid({"modelserver": {"capture": capture}})
    config_map = one(objects, "ConfigMap", "capture")
    assert config_map["data"] == {"MLOPS_CAPTURE_URI": uri}
    assert capture_env(model_server(objects)[1])["MLOPS_CAPTURE_URI"]["value"] == uri
    # values.yaml hands it to every Airflow component, optional so Airflow starts when capture is off.
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    env_from = yaml.safe_load(defaults["airflow"]["extraEnvFrom"])
    assert {"configMapRef": {"name": config_map["metadata"]["name"], "optional": True}} in env_from


def shadow_env(container: dict) -> dict[str, str]:
    return {
        e["name"]: e["value"]
        for e in container["env"]
        if e["name"].startswith(("MLOPS_SHADOW_", "MLOPS_CANARY_"))
    }


def test_the_model_server_scores_a_shadow_and_keeps_the_packaged_share_and_queue_by_default(rendered):
    _, container = model_server(rendered)
    assert shadow_env(container) == {"MLOPS_SHADOW_ENABLED": "true"}
    _, bounded = model_server(render_valid({"modelserver": {"shadow": {"maxQueueRows": 500}}}))
    assert shadow_env(bounded)["MLOPS_SHADOW_MAX_QUEUE_ROWS"] == "500"


def test_a_shadow_can_be_withdrawn_or_given_a_canary_share_without_a_rebuild():
    from airflow_mlops_provider.serving.shadow import ENV, ShadowConfig

    off = shadow_env(model_server(render_valid({"modelserver": {"shadow": {"enabled": False}}}))[1])
    canary = shadow_env(model_server(render_valid({"modelserver": {"shadow": {"canaryShare": 0.05}}}))[1])
    assert off["MLOPS_SHADOW_ENABLED"] == "false"
    assert canary["MLOPS_CANARY_SHARE"] == "0.05"
    # The names the chart sets are the ones the Bento reads, and their values parse.
    assert set(off) | set(canary) <= set(ENV.values())
    assert ShadowConfig().with_env(off).enabled is False
    assert ShadowConfig().with_env(canary).canary_share == 0.05


@pytest.mark.parametrize(
    ("shadow", "message"),
    [
        pytest.param(
            {"canaryShare": 1.5}, "'/modelserver/shadow/canaryShare': maximum", id="share-above-one"
        ),
        pytest.param({"maxQueueRows": 0}, "'/modelserver/shadow/maxQueueRows': minimum", id="empty-queue"),
    ],
)
def test_a_shadow_setting_the_bento_would_refuse_is_refused_by_the_schema(shadow, message):
    import helm_python

    chart = helm_python.Chart.load(CHART)
    with pytest.raises(helm_python.HelmValuesError, match=message):
        chart.validate_schema({"modelserver": {"shadow": shadow}})
