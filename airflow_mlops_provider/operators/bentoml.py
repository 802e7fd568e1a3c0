"""Package a registered MLflow model version as a smoke-tested BentoML Bento."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlops_provider import lineage
from airflow_mlops_provider.exceptions import PackagingError
from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin
from airflow_mlops_provider.openlineage import OpenLineageMixin, bento_uri, model_version_uri

if TYPE_CHECKING:
    from airflow.sdk import Context
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from airflow_mlops_provider.serving.capture import CaptureConfig
    from airflow_mlops_provider.serving.shadow import ShadowConfig
    from airflow_mlops_provider.vulnerabilities import VulnerabilityPolicy

#: Labels on the BentoML model and the Bento, tying both to the registry.
LABEL_MODEL_NAME = "mlflow_model_name"
LABEL_MODEL_VERSION = "mlflow_model_version"
LABEL_RUN_ID = "mlflow_run_id"
LABEL_DATA_FINGERPRINT = "data_fingerprint"
#: The serving subpackage travels in each Bento under this top-level name, apart from the provider.
SERVING_PACKAGE = "mlops_serving"
SERVICE_IMPORT = f"{SERVING_PACKAGE}.service:MlflowModelService"
#: What the service imports besides BentoML and the model's own requirements.
SERVICE_REQUIREMENTS = ("pandas", "pydantic>=2", "pyyaml", "pyarrow", "fsspec", "prometheus-client")
CONTAINER_BACKENDS = ("docker", "podman", "buildah", "nerdctl", "buildctl")


def bento_name(model_name: str) -> str:
    """Return a BentoML tag name for a registered model name (lower case, ``[a-z0-9._-]``)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-._")
    if not name:
        raise PackagingError(f"model name {model_name!r} gives an empty BentoML tag name")
    return name[:63]


def bentoml_env() -> dict[str, str]:
    """Return the BentoML variables this provider runs with: its home and no usage tracking."""
    from airflow_mlops_provider.hooks.mlflow import mlops_home

    return {
        "BENTOML_HOME": os.environ.get("BENTOML_HOME") or str(mlops_home() / "bentoml"),
        "BENTOML_DO_NOT_TRACK": os.environ.get("BENTOML_DO_NOT_TRACK") or "True",
    }


def read_sample(uri: str, columns: list[dict[str, Any]], rows: int) -> Any:
    """Return the first ``rows`` rows of a local CSV or Parquet file (or directory of Parquet)."""
    import pandas as pd

    path = (
        Path(urllib.parse.unquote(urllib.parse.urlsplit(uri).path))
        if uri.startswith("file://")
        else Path(uri)
    )
    if not path.exists():
        raise PackagingError(f"evaluation sample {uri!r} does not exist")
    frame = pd.read_csv(path, nrows=rows) if path.suffix.lower() in (".csv", ".gz") else pd.read_parquet(path)
    missing = [c["name"] for c in columns if c["name"] not in frame.columns and c.get("required", True)]
    if missing:
        raise PackagingError(f"evaluation sample {uri!r} lacks the model's input columns {missing}")
    return frame.head(rows)


class BentoPackageOperator(OpenLineageMixin, MlflowHookMixin, BaseOperator):
    """Package a registered MLflow model version as a Bento, smoke-test it and export it.

    Resolves the version (by ``version`` or ``alias``) in the registry and refuses it unless it is
    READY, has the ``python_function`` flavor and a column-based signature. Imports it into the
    BentoML model store and builds a Bento, both tagged ``<name>:v<version>``: packaging the same
    version again reuses them. Serves the Bento on a free loopback port, sends the evaluation sample
    and requires predictions equal to the registry's pyfunc model's (labels exactly, floats within
    ``rel_tol``). Only then exports the archive (and its Dockerfile, or builds the image when
    ``container_backend`` is set and works) and tags the model version. On failure, what this task
    added to the BentoML store is deleted again.

    The Bento captures what it serves (docs/monitoring.md): by default to ``$MLOPS_HOME/capture``,
    every request, no column dropped or hashed. ``capture`` changes that and every setting can be
    overridden by its ``MLOPS_CAPTURE_*`` variable where the Bento is served. The smoke test's
    traffic is never captured. The model version is tagged with the capture URI.

    With ``shadow_alias`` (or ``shadow_version``) the Bento also carries that version, scored in
    shadow on every request, or answering a canary share (docs/shadow.md). Its input columns must
    come, with their types, in the champion's requests; it must predict on the smoke sample. Such a
    Bento is tagged ``<name>:v<version>-shadow-v<shadow>``, and its tags go on the shadow's version
    (``mlops.shadow.*``, with the capture URI), leaving the version's own Bento tags alone.

    Returns ``{bento_tag, model_tag, archive_uri, model_version, labels, image, dockerfile_uri,
    smoke_test: {status, rows, url}, capture, shadow}``.

    :param model_name: Registered model name. (templated)
    :param alias: Alias to package when ``version`` is not given. (templated)
    :param version: Model version to package. (templated)
    :param eval_data_uri: CSV or Parquet sample for the smoke test; default: the model's logged
        input example. (templated)
    :param smoke_rows: How many rows of the sample to send.
    :param smoke_test: Serve and compare before exporting. Without it the model version is tagged
        ``mlops.bento.smoke_test=skipped``.
    :param export_uri: Directory for the ``.bento`` archive; default ``$MLOPS_HOME/bentos``. (templated)
    :param container_backend: Image builder (``docker``, ``podman``...); ``None`` skips the image.
    :param capture: Inference capture settings (``uri``, ``sample_rate``, ``drop_columns``,
        ``hash_columns``, ``flush_rows``, ``flush_interval_s``, ``max_buffer_rows``; see
        :class:`~airflow_mlops_provider.serving.capture.CaptureConfig`) as a mapping or a
        ``CaptureConfig``; ``True`` for the defaults, ``False`` for none. (templated)
    :param shadow_alias: Alias of the version to serve in shadow (``challenger``); ``None`` for none.
        (templated)
    :param shadow_version: The version to serve in shadow, instead of an alias. (templated)
    :param shadow: Shadow settings (``max_queue_rows``, ``canary_share``, ``canary_key``; see
        :class:`~airflow_mlops_provider.serving.shadow.ShadowConfig`) as a mapping or a
        ``ShadowConfig``. (templated)
    :param vulnerability_scan: Audit the Bento's requirements (pinned to this environment's versions)
        with pip-audit before it is exported: a
        :class:`~airflow_mlops_provider.vulnerabilities.VulnerabilityPolicy`, its mapping, or ``True``
        for the defaults (every advisory refuses; an unreachable service refuses). ``None`` skips the
        scan, and the version is tagged ``mlops.bento.vulnerability_scan=skipped``.
    :param max_batch_size: Largest batch (and largest request) the service accepts.
    :param max_latency_ms: Latency budget of a batched request; past it the service answers 503.
    :param workers: Service worker processes.
    :param request_timeout_s: Service-side timeout of one request.
    :param serve_timeout_s: How long the smoke test waits for the Bento to become ready.
    :param rel_tol: Relative tolerance for float predictions in the smoke test.
    :param mlflow_conn_id: The ``mlflow`` connection.
    """

    template_fields: Sequence[str] = (
        "model_name",
        "alias",
        "version",
        "eval_data_uri",
        "export_uri",
        "capture",
        "shadow_alias",
        "shadow_version",
        "shadow",
    )
    template_fields_renderers = {"capture": "json", "shadow": "json"}
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        model_name: str,
        alias: str | None = "champion",
        version: str | int | None = None,
        eval_data_uri: str | None = None,
        smoke_rows: int = 32,
        smoke_test: bool = True,
        export_uri: str | None = None,
        container_backend: str | None = None,
        capture: Mapping[str, Any] | CaptureConfig | bool = True,
        shadow_alias: str | None = None,
        shadow_version: str | int | None = None,
        shadow: Mapping[str, Any] | ShadowConfig | None = None,
        vulnerability_scan: Mapping[str, Any] | VulnerabilityPolicy | bool | None = None,
        max_batch_size: int = 64,
        max_latency_ms: int = 1000,
        workers: int = 1,
        request_timeout_s: float = 30.0,
        serve_timeout_s: float = 180.0,
        rel_tol: float = 1e-6,
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.version = version
        self.eval_data_uri = eval_data_uri
        self.smoke_rows = smoke_rows
        self.smoke_test = smoke_test
        self.export_uri = export_uri
        self.container_backend = container_backend
        self.capture = capture
        self.shadow_alias = shadow_alias
        self.shadow_version = shadow_version
        self.shadow = shadow
        self.vulnerability_scan = vulnerability_scan
        self.max_batch_size = max_batch_size
        self.max_latency_ms = max_latency_ms
        self.workers = workers
        self.request_timeout_s = request_timeout_s
        self.serve_timeout_s = serve_timeout_s
        self.rel_tol = rel_tol
        self.mlflow_conn_id = mlflow_conn_id
        self._server: Any = None

    # -- resolving -------------------------------------------------------------------------------

    def resolve_version(
        self, client: MlflowClient, version: str | int | None = None, alias: str | None = None
    ) -> ModelVersion:
        """Return the model version to package (``version``/``alias``, default this task's), or raise
        naming what is wrong with it."""
        from mlflow.exceptions import MlflowException

        if version is None and alias is None:
            version, alias = self.version, self.alias
        try:
            if version not in (None, ""):
                mv = client.get_model_version(self.model_name, str(version))
            elif alias:
                mv = client.get_model_version_by_alias(self.model_name, alias)
            else:
                raise PackagingError("give a version or an alias of the model to package")
        except MlflowException as err:
            what = f"version {version}" if version not in (None, "") else f"alias {alias!r}"
            raise PackagingError(
                f"registered model {self.model_name!r} has no {what}: {err.message}"
            ) from None
        if mv.status != "READY":
            raise PackagingError(
                f"model {self.model_name!r} version {mv.version} is {mv.status}, expected READY"
                + (f" ({mv.status_message})" if mv.status_message else "")
            )
        return mv

    def check_servable(self, model_uri: str) -> list[dict[str, Any]]:
        """Return the input columns of the model at ``model_uri``, or raise unless BentoML can serve it."""
        from mlflow.exceptions import MlflowException
        from mlflow.models import get_model_info

        from airflow_mlops_provider.serving.schema import SignatureError, input_columns

        try:
            info = get_model_info(model_uri)
        except (MlflowException, OSError) as err:
            raise PackagingError(f"{model_uri} is not an MLflow model: {err}") from None
        if "python_function" not in info.flavors:
            raise PackagingError(
                f"{model_uri} has flavors {sorted(info.flavors)}; BentoML serves MLflow models with the "
                f"'python_function' flavor only"
            )
        try:
            return input_columns({"signature": info.signature.to_dict() if info.signature else None})
        except SignatureError as err:
            raise PackagingError(f"{model_uri}: {err}") from None

    def labels(self, client: MlflowClient, mv: ModelVersion) -> dict[str, str]:
        """Return the lineage labels of the model version: name, version, run id, data fingerprint."""
        fingerprint = mv.tags.get(lineage.TAG_DATA_FINGERPRINT, "")
        if not fingerprint and mv.run_id:
            fingerprint = client.get_run(mv.run_id).data.tags.get(lineage.TAG_DATA_FINGERPRINT, "")
        return {
            LABEL_MODEL_NAME: mv.name,
            LABEL_MODEL_VERSION: str(mv.version),
            LABEL_RUN_ID: mv.run_id or "",
            LABEL_DATA_FINGERPRINT: fingerprint or "unknown",
        }

    def scan_vulnerabilities(self, requirements: list[str]) -> dict[str, Any] | None:
        """Audit the Bento's requirements; raise :class:`PackagingError` when the policy refuses them."""
        from datetime import date

        from airflow_mlops_provider.exceptions import GateConfigError
        from airflow_mlops_provider.vulnerabilities import (
            VulnerabilityPolicy,
            audit,
            judge,
            locked_requirements,
        )

        if self.vulnerability_scan in (None, False):
            self.log.warning("Vulnerability scan disabled: the Bento's requirements are not audited")
            return None
        try:
            policy = VulnerabilityPolicy.coerce(self.vulnerability_scan)
        except GateConfigError as err:
            raise PackagingError(str(err)) from None
        pinned = locked_requirements(requirements)
        self.log.info("Auditing %d pinned requirements with pip-audit (%s)", len(pinned), policy.service)
        result = judge(audit(pinned, policy), policy, date.today())
        if not result.passed:
            raise PackagingError(f"the Bento is not deployable: {result.describe()}")
        if result.status == "unaudited":
            self.log.warning("%s (on_unreachable=warn: packaged anyway)", result.describe())
        else:
            self.log.info("%s", result.describe())
        return {**result.to_dict(), "policy": policy.to_dict(), "requirements": pinned}

    def model_card_files(self, mv: ModelVersion) -> dict[str, str]:
        """Return the version's model card (file name -> text) to bake into the Bento; ``{}`` without one.

        A card that is tagged but cannot be fetched fails the packaging: the Bento would serve
        ``/model_card`` without it.
        """
        from airflow_mlops_provider.model_card import HTML_FILE, MARKDOWN_FILE, TAG_MODEL_CARD_URI

        uri = (mv.tags or {}).get(TAG_MODEL_CARD_URI)
        if not uri:
            self.log.warning("%s v%s has no model card: the Bento serves none", mv.name, mv.version)
            return {}
        run_id, _, directory = uri.removeprefix("runs:/").partition("/")
        client = self.mlflow_hook.get_client()
        out = {}
        with tempfile.TemporaryDirectory(prefix="model-card-") as tmp:
            for file_name in (HTML_FILE, MARKDOWN_FILE):
                try:
                    local = client.download_artifacts(run_id, f"{directory}/{file_name}", tmp)
                    out[file_name] = Path(local).read_text()
                except Exception as err:
                    raise PackagingError(
                        f"the model card of {mv.name} v{mv.version} at {uri} cannot be read: {err}"
                    ) from None
        return out

    def capture_config(self, columns: list[dict[str, Any]]) -> CaptureConfig:
        """Return the Bento's capture settings, checked against the model's input columns."""
        from airflow_mlops_provider.hooks.mlflow import mlops_home
        from airflow_mlops_provider.serving.capture import CaptureConfig, CaptureConfigError

        default_uri = str(mlops_home() / "capture")
        try:
            if isinstance(self.capture, CaptureConfig):
                config = self.capture
            elif isinstance(self.capture, bool):
                config = CaptureConfig(enabled=self.capture, uri=default_uri if self.capture else None)
            else:
                config = CaptureConfig.from_mapping({"uri": default_uri, **dict(self.capture)})
            if config.enabled:
                config.check_columns([c["name"] for c in columns])
        except CaptureConfigError as err:
            raise PackagingError(str(err)) from None
        return config

    def shadow_config(
        self, columns: list[dict[str, Any]], shadow_columns: list[dict[str, Any]]
    ) -> ShadowConfig:
        """Return the shadow settings, checked against the champion's and the shadow's input columns."""
        from airflow_mlops_provider.serving.capture import CaptureConfigError
        from airflow_mlops_provider.serving.shadow import ShadowConfig, check_compatible

        try:
            config = (
                self.shadow
                if isinstance(self.shadow, ShadowConfig)
                else ShadowConfig.from_mapping(self.shadow)
            )
            check_compatible(columns, shadow_columns)
            config.check_columns([c["name"] for c in columns])
            if config.max_queue_rows < self.max_batch_size:
                raise CaptureConfigError(
                    f"shadow max_queue_rows={config.max_queue_rows} is below max_batch_size="
                    f"{self.max_batch_size}: a full batch could never wait for the shadow"
                )
        except CaptureConfigError as err:
            raise PackagingError(str(err)) from None
        return config

    def resolve_shadow(self, client: MlflowClient, mv: ModelVersion) -> ModelVersion | None:
        """Return the version to serve in shadow beside ``mv``, ``None`` when none was asked for."""
        if self.shadow_version in (None, "") and not self.shadow_alias:
            return None
        shadow = self.resolve_version(client, self.shadow_version or None, self.shadow_alias)
        if str(shadow.version) == str(mv.version):
            raise PackagingError(
                f"the shadow of {mv.name!r} would be v{mv.version}, the version it shadows: point "
                f"{self.shadow_alias or 'shadow_version'} at another version, or package without a shadow"
            )
        return shadow

    # -- the task --------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        os.environ.update(bentoml_env())
        client = self.mlflow_hook.get_client()
        mv = self.resolve_version(client)
        model_uri = f"models:/{mv.name}/{mv.version}"
        columns = self.check_servable(model_uri)
        capture = self.capture_config(columns)
        labels = self.labels(client, mv)
        tag = model_tag = f"{bento_name(mv.name)}:v{mv.version}"
        shadow_mv = self.resolve_shadow(client, mv)
        shadow: dict[str, Any] | None = None
        if shadow_mv is not None:
            if not capture.enabled:
                raise PackagingError(
                    f"a shadow (v{shadow_mv.version}) with capture off would be scored for nothing: its "
                    f"predictions are only ever captured; package it with capture on"
                )
            shadow_uri = f"models:/{shadow_mv.name}/{shadow_mv.version}"
            settings = self.shadow_config(columns, self.check_servable(shadow_uri))
            shadow = {
                "model_uri": shadow_uri,
                "labels": self.labels(client, shadow_mv),
                "settings": settings.to_dict(),
                "tag": f"{bento_name(mv.name)}:v{shadow_mv.version}",
            }
            tag = f"{tag}-shadow-v{shadow_mv.version}"
        self.log.info(
            "Packaging %s as Bento %s (BENTOML_HOME=%s)", model_uri, tag, os.environ["BENTOML_HOME"]
        )

        import bentoml

        created: list[tuple[str, str]] = []
        try:
            bento_model = self._import_model(model_tag, model_uri, labels, created)
            if shadow is not None:
                shadow["bento_model"] = self._import_model(
                    shadow["tag"], shadow["model_uri"], shadow["labels"], created
                )
            card = self.model_card_files(mv)
            bento = self._build_bento(tag, bento_model, labels, capture, created, shadow, card)
            if self.smoke_test:
                smoke = self.run_smoke_test(tag, model_uri, bento_model, columns, shadow)
            else:
                self.log.warning("Smoke test disabled: Bento %s is exported untested", tag)
                smoke = {"status": "skipped"}
            scan = self.scan_vulnerabilities(bento_requirements(bento_model, shadow))
            archive_uri = self._export(bento, created)
            image, dockerfile_uri = self._image_or_dockerfile(tag, Path(archive_uri).parent)
        except BaseException:
            for kind, what in reversed(created):
                self._delete(kind, what)
            raise

        if shadow_mv is None:
            tags = {
                lineage.TAG_BENTO_TAG: tag,
                lineage.TAG_BENTO_ARCHIVE_URI: archive_uri,
                lineage.TAG_BENTO_SMOKE_TEST: smoke["status"],
            }
            if image:
                tags[lineage.TAG_BENTO_IMAGE] = image
            if dockerfile_uri:
                tags[lineage.TAG_BENTO_DOCKERFILE_URI] = dockerfile_uri
            tagged = mv
        else:
            # The shadow's own tags: the champion's Bento tags still name its own Bento.
            tags = {
                lineage.TAG_SHADOW_BENTO_TAG: tag,
                lineage.TAG_SHADOW_ARCHIVE_URI: archive_uri,
                lineage.TAG_SHADOW_CHAMPION_VERSION: str(mv.version),
                lineage.TAG_SHADOW_SMOKE_TEST: smoke["status"],
            }
            ended = shadow_mv.tags.get(lineage.TAG_SHADOW_ENDED_AT)
            if (
                shadow_mv.tags.get(lineage.TAG_SHADOW_BENTO_TAG) != tag
                or not shadow_mv.tags.get(lineage.TAG_SHADOW_SINCE)
                or ended
            ):
                # A new shadow (or the same one again after it ended): its traffic starts now.
                from airflow_mlops_provider.promotion import utcnow_iso

                tags[lineage.TAG_SHADOW_SINCE] = utcnow_iso()
                for key in (lineage.TAG_SHADOW_ENDED_AT, lineage.TAG_SHADOW_OUTCOME):
                    if key in shadow_mv.tags:
                        client.delete_model_version_tag(shadow_mv.name, str(shadow_mv.version), key)
            tagged = shadow_mv
        if capture.enabled and capture.uri:
            tags[lineage.TAG_BENTO_CAPTURE_URI] = capture.uri
        if shadow_mv is None:
            tags[lineage.TAG_BENTO_VULNERABILITY_SCAN] = scan["status"] if scan else "skipped"
        for key, value in tags.items():
            client.set_model_version_tag(tagged.name, str(tagged.version), key, value)
        self.log.info("Bento %s exported to %s", tag, archive_uri)
        step = {"bento_tag": tag, "version": str(mv.version), "smoke_test": smoke["status"]}
        if shadow_mv is not None:
            step["shadow_version"] = str(shadow_mv.version)
        self.record_decision_step(context, mv.name, "package", step)
        self.record_lineage(
            inputs=[model_version_uri(mv.name, mv.version)]
            + ([model_version_uri(shadow_mv.name, shadow_mv.version)] if shadow_mv is not None else []),
            outputs=[bento_uri(tag), archive_uri],
        )
        return {
            "bento_tag": tag,
            "model_tag": str(bento_model.tag),
            "archive_uri": archive_uri,
            "model_version": str(mv.version),
            "model_name": mv.name,
            "labels": labels,
            "image": image,
            "dockerfile_uri": dockerfile_uri,
            "smoke_test": smoke,
            "capture": capture.to_dict(),
            "shadow": (
                {
                    "model_version": str(shadow_mv.version),
                    "model_tag": str(shadow["bento_model"].tag),
                    "labels": shadow["labels"],
                    "settings": shadow["settings"],
                }
                if shadow is not None and shadow_mv is not None
                else None
            ),
            "vulnerability_scan": scan,
            "bentoml_version": bentoml.__version__,
        }

    def _import_model(
        self, tag: str, model_uri: str, labels: dict[str, str], created: list[tuple[str, str]]
    ) -> Any:
        import bentoml

        existing = self._existing_from_same_run(
            bentoml.models.get, tag, labels, "BentoML model store", f"bentoml models delete {tag}"
        )
        if existing is not None:
            self.log.info("BentoML model %s already imported: reusing it", tag)
            return existing
        self.log.info("Importing %s into the BentoML model store as %s", model_uri, tag)
        # BentoML writes the model aside and saves it only when the import succeeds.
        model = bentoml.mlflow.import_model(
            tag,
            model_uri,
            signatures={"predict": {"batchable": True}},
            labels=labels,
            metadata={"mlflow_model_uri": model_uri},
        )
        created.append(("model", tag))
        return model

    @staticmethod
    def _existing_from_same_run(
        get: Any, tag: str, labels: dict[str, str], store: str, delete_cmd: str
    ) -> Any:
        """Return the store's entry for ``tag`` when it came from the same MLflow run, ``None`` when absent.

        Rebuilding the same model version is idempotent; the same tag from another run is refused.
        """
        from bentoml.exceptions import NotFound

        try:
            existing = get(tag)
        except NotFound:
            return None
        found = existing.info.labels.get(LABEL_RUN_ID)
        if found != labels[LABEL_RUN_ID]:
            raise PackagingError(
                f"the {store} already holds {tag} from run {found!r}, not {labels[LABEL_RUN_ID]!r}: "
                f"delete it ({delete_cmd}) to repackage"
            )
        return existing

    def _build_bento(
        self,
        tag: str,
        bento_model: Any,
        labels: dict[str, str],
        capture: CaptureConfig,
        created: list[tuple[str, str]],
        shadow: Mapping[str, Any] | None = None,
        card: Mapping[str, str] | None = None,
    ) -> Any:
        import bentoml

        from airflow_mlops_provider import serving

        existing = self._existing_from_same_run(
            bentoml.get, tag, labels, "Bento store", f"bentoml delete {tag}"
        )
        if existing is not None:
            self.log.info("Bento %s already built: reusing it", tag)
            built = _built_capture(existing)
            if built != capture.to_dict():
                self.log.warning(
                    "Bento %s was built with capture settings %s, not %s: it keeps them (a Bento does "
                    "not change); override them where it is served with the MLOPS_CAPTURE_* variables",
                    tag,
                    built,
                    capture.to_dict(),
                )
            return existing

        name, version = tag.split(":")
        with tempfile.TemporaryDirectory(prefix="bento-build-") as ctx:
            shutil.copytree(
                Path(serving.__file__).parent,
                Path(ctx, SERVING_PACKAGE),
                ignore=shutil.ignore_patterns("__pycache__"),
            )
            config = {
                "model_tag": str(bento_model.tag),
                "service_name": name.replace("-", "_").replace(".", "_"),
                "max_batch_size": self.max_batch_size,
                "max_latency_ms": self.max_latency_ms,
                "workers": self.workers,
                "timeout_s": self.request_timeout_s,
                "labels": labels,
                "capture": capture.to_dict(),
            }
            if shadow is not None:
                config["shadow"] = {
                    "model_tag": str(shadow["bento_model"].tag),
                    "labels": shadow["labels"],
                    "settings": shadow["settings"],
                }
            for file_name, text in (card or {}).items():
                Path(ctx, file_name).write_text(text)
            Path(ctx, "bento_config.json").write_text(json.dumps(config, indent=2))
            # The models' own pinned requirements, plus what the service itself imports. Not locked:
            # locking resolves against a package index, which a worker may not reach.
            Path(ctx, "requirements.txt").write_text(
                "\n".join(bento_requirements(bento_model, shadow)) + "\n"
            )
            python = {"requirements_txt": "requirements.txt", "lock_packages": False}
            self.log.info("Building Bento %s", tag)
            # BentoML imports the service to build it; a service of an earlier build in this
            # process would otherwise answer from the module cache with its own model.
            _forget_modules(SERVING_PACKAGE)
            try:
                bento = bentoml.build(
                    SERVICE_IMPORT,
                    name=name,
                    version=version,
                    build_ctx=ctx,
                    include=[f"{SERVING_PACKAGE}/*.py", "bento_config.json", *(card or {})],
                    labels=labels,
                    description=f"MLflow model {labels[LABEL_MODEL_NAME]} version {labels[LABEL_MODEL_VERSION]}"
                    + (f", v{shadow['labels'][LABEL_MODEL_VERSION]} in shadow" if shadow else ""),
                    python=python,
                )
            finally:
                _forget_modules(SERVING_PACKAGE)
            created.append(("bento", tag))
            return bento

    def _delete(self, kind: str, tag: str) -> None:
        """Remove what this task created: a ``bento`` or ``model`` by tag, an ``archive`` by path."""
        import bentoml

        try:
            if kind == "archive":
                Path(tag).unlink(missing_ok=True)
            elif kind == "bento":
                bentoml.delete(tag)
            else:
                bentoml.models.delete(tag)
            self.log.info("Removed half-built %s %s from the BentoML store", kind, tag)
        except Exception as err:
            self.log.warning("Could not remove %s %s from the BentoML store: %s", kind, tag, err)

    # -- smoke test ------------------------------------------------------------------------------

    def smoke_sample(self, bento_model: Any, columns: list[dict[str, Any]]) -> Any:
        """Return the rows to smoke-test with: ``eval_data_uri``, else the model's input example."""
        if self.eval_data_uri:
            return read_sample(self.eval_data_uri, columns, self.smoke_rows)
        from mlflow.models import Model

        path = bento_model.path_of("mlflow_model")
        example = Model.load(path).load_input_example(path)
        if example is None:
            raise PackagingError(
                "no evaluation sample for the smoke test: pass eval_data_uri, or log the model with an "
                "input_example"
            )
        import pandas as pd

        frame = example if isinstance(example, pd.DataFrame) else pd.DataFrame(example)
        return frame.head(self.smoke_rows)

    def run_smoke_test(
        self,
        tag: str,
        model_uri: str,
        bento_model: Any,
        columns: list[dict[str, Any]],
        shadow: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Serve the Bento on loopback and require its predictions to equal the pyfunc model's.

        A shadow must predict, one prediction per row, on the same rows (in process: the served Bento
        answers with the champion alone, and its shadow's scores are only captured).
        """
        import mlflow.pyfunc

        from airflow_mlops_provider.processes import free_port, start_process, wait_http
        from airflow_mlops_provider.serving.capture import ENV as CAPTURE_ENV
        from airflow_mlops_provider.serving.schema import compare_predictions, to_frame, to_json, to_records
        from airflow_mlops_provider.serving.shadow import ENV as SHADOW_ENV

        records = to_records(self.smoke_sample(bento_model, columns), columns)
        expected = to_json(mlflow.pyfunc.load_model(model_uri).predict(to_frame(records, columns)))
        if shadow is not None:
            try:
                shadow_columns = self.check_servable(shadow["model_uri"])
                scored = to_json(
                    mlflow.pyfunc.load_model(shadow["model_uri"]).predict(to_frame(records, shadow_columns))
                )
            except PackagingError:
                raise
            except Exception as err:
                raise PackagingError(
                    f"smoke test: the shadow {shadow['model_uri']} fails on the sample: {type(err).__name__}: {err}"
                ) from None
            if len(scored) != len(records):
                raise PackagingError(
                    f"smoke test: the shadow {shadow['model_uri']} gave {len(scored)} predictions for "
                    f"{len(records)} rows"
                )

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = Path(tempfile.mkdtemp(prefix="bento-smoke-")) / "serve.log"
        command = [sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1", "--port", str(port)]
        self.log.info("Smoke test: serving %s at %s (log %s)", tag, url, log_path)
        started = time.monotonic()
        # The smoke test's own requests are not traffic: nothing of them is captured.
        env = {
            **os.environ,
            **bentoml_env(),
            CAPTURE_ENV["enabled"]: "false",
            SHADOW_ENV["canary_share"]: "0",
        }
        if shadow is not None:
            # A shadow is only loaded and scored where capture is on: capture the smoke test's traffic
            # to a throwaway directory, so that the served Bento scores the shadow as it will in service.
            env[CAPTURE_ENV["enabled"]] = "true"
            env[CAPTURE_ENV["uri"]] = str(log_path.parent / "capture")
        self._server = start_process("bentoml-smoke", command, env, log_path)
        try:
            try:
                wait_http(f"{url}/readyz", self.serve_timeout_s, proc=self._server, log_path=log_path)
            except (RuntimeError, TimeoutError) as err:
                raise PackagingError(f"smoke test: the Bento {tag} did not become ready: {err}") from None
            ready_s = time.monotonic() - started
            actual: list[Any] = []
            for start in range(0, len(records), self.max_batch_size):
                actual.extend(
                    post_json(f"{url}/predict", {"rows": records[start : start + self.max_batch_size]})
                )
                if shadow is not None:
                    # Each batch scored before the next is sent: the smoke test's own pace must not
                    # fill the shadow's queue.
                    self._check_shadow_scored(url, tag, len(actual), log_path)
        finally:
            self._server.stop()
            self._server = None
            # Errors above already carry the tail of this log.
            shutil.rmtree(log_path.parent, ignore_errors=True)
        mismatches = compare_predictions(expected, actual, rel_tol=self.rel_tol)
        if mismatches:
            raise PackagingError(
                f"smoke test failed: the Bento {tag} answered differently from {model_uri} on "
                f"{len(mismatches)} of {len(records)} rows: " + "; ".join(mismatches[:5])
            )
        self.log.info("Smoke test passed: %d rows agree (ready in %.1fs)", len(records), ready_s)
        return {"status": "passed", "rows": len(records), "ready_s": round(ready_s, 1)}

    def _check_shadow_scored(
        self, url: str, tag: str, rows: int, log_path: Path, wait_s: float = 30.0
    ) -> None:
        """Require the served Bento to have loaded its shadow and scored every smoke-test row."""

        def log_tail() -> str:
            lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
            shadow_lines = [line for line in lines if "shadow" in line.lower() or "Error" in line]
            return "\n".join((shadow_lines or lines)[-15:])

        info = post_json(f"{url}/model_info", {})
        if not (info.get("shadow") or {}).get("scoring"):
            raise PackagingError(
                f"smoke test: the Bento {tag} serves without its shadow (it did not load in the server): "
                f"{info.get('shadow')}; the server's log:\n{log_tail()}"
            )
        deadline = time.monotonic() + wait_s
        while True:
            scored = _metric_sum(url, "mlops_shadow_scored_rows_total")
            failed = _metric_sum(url, "mlops_shadow_dropped_rows_total")
            if scored >= rows:
                return
            if failed or time.monotonic() > deadline:
                raise PackagingError(
                    f"smoke test: the Bento {tag}'s shadow scored {scored:.0f} of {rows} rows and dropped "
                    f"{failed:.0f} (it raises in the server, or is too slow); the server's log:\n{log_tail()}"
                )
            time.sleep(0.2)

    # -- export ----------------------------------------------------------------------------------

    def _export(self, bento: Any, created: list[tuple[str, str]]) -> str:
        import bentoml

        from airflow_mlops_provider.hooks.mlflow import mlops_home

        directory = Path(self.export_uri or mlops_home() / "bentos")
        if str(directory).startswith("file:"):
            directory = Path(urllib.parse.unquote(urllib.parse.urlsplit(str(directory)).path))
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{bento.tag.name}-{bento.tag.version}.bento"
        existed = target.exists()
        # Written aside, then renamed: a reader never sees half an archive, a rerun replaces it whole.
        with tempfile.TemporaryDirectory(prefix=".partial-", dir=directory) as partial:
            Path(bentoml.export_bento(bento.tag, str(Path(partial, target.name)))).replace(target)
        if not existed:
            created.append(("archive", str(target)))
        return str(target)

    def _image_or_dockerfile(self, tag: str, directory: Path) -> tuple[str | None, str | None]:
        import bentoml

        backend = self.container_backend
        if backend and self._backend_works(backend):
            self.log.info("Building container image %s with %s", tag, backend)
            build: Any = bentoml.container.build  # overloaded per backend literal
            build(tag, backend=backend, image_tag=(tag,))
            return tag, None
        if backend:
            self.log.warning("Image builder %r is not available here: container image skipped", backend)
        else:
            self.log.info("No image builder configured: container image skipped")
        dockerfile = directory / f"{tag.replace(':', '-')}.Dockerfile"
        bentoml.container.get_containerfile(tag, output_path=str(dockerfile))
        self.log.info("Dockerfile for %s written to %s", tag, dockerfile)
        return None, str(dockerfile)

    def _backend_works(self, backend: str) -> bool:
        if backend not in CONTAINER_BACKENDS:
            raise PackagingError(f"container_backend={backend!r}; expected one of {list(CONTAINER_BACKENDS)}")
        executable = shutil.which(backend)
        if not executable:
            return False
        probe = (
            [executable, "info"] if backend in ("docker", "podman", "nerdctl") else [executable, "--version"]
        )
        try:
            return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def on_kill(self) -> None:
        if self._server is not None:
            try:
                self._server.stop()
            except Exception as err:
                self.log.warning("Could not stop the smoke-test server: %s", err)


def bento_requirements(bento_model: Any, shadow: Mapping[str, Any] | None = None) -> list[str]:
    """The requirements a Bento installs: its models' own (merged), then what the service imports."""
    models = [bento_model, *([shadow["bento_model"]] if shadow is not None else [])]
    lines = merged_requirements([Path(m.path_of("mlflow_model"), "requirements.txt") for m in models])
    return [*lines, *SERVICE_REQUIREMENTS]


def _requirement_key(line: str) -> tuple[str, str]:
    """A requirement's package name (normalised) and its environment marker (``python_version < "3.11"``)."""
    requirement, _, marker = line.partition(";")
    name = re.split(r"[<>=!~\[\s@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")
    return name, " ".join(marker.split())


def _requirement_pin(line: str) -> str:
    """What a requirement says of its version (``==1.7.2``); empty for a bare name."""
    requirement = line.partition(";")[0].strip()
    return requirement[len(_requirement_key(line)[0]) :].strip()


def merged_requirements(files: Sequence[Path]) -> list[str]:
    """Return the requirement lines of every file, each once, refusing one package pinned two ways.

    A Bento with a shadow installs both models' requirements. A package (under the same environment
    marker) pinned two different ways cannot hold for both, and the shadow would then not load
    where the Bento is served; a bare name is satisfied by the other file's pin.
    """
    seen: dict[tuple[str, str], str] = {}
    for path in files:
        for raw in path.read_text().splitlines() if path.exists() else []:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key = _requirement_key(line)
            before = seen.get(key)
            if before is None or not _requirement_pin(before):
                seen[key] = line  # first seen, or a bare name that this line pins
            elif _requirement_pin(line) and _requirement_pin(line) != _requirement_pin(before):
                raise PackagingError(
                    f"the models' requirements disagree on {key[0]!r}: {before!r} and {line!r}; log both "
                    f"models with the same pin to serve them in one Bento"
                )
    return list(seen.values())


def _built_capture(bento: Any) -> dict[str, Any] | None:
    """Return the capture settings a built Bento carries (``None`` when it predates capture)."""
    try:
        config = json.loads(Path(bento.path_of("src"), "bento_config.json").read_text())
    except (OSError, ValueError):
        return None
    built: dict[str, Any] | None = config.get("capture")
    return built


def _forget_modules(package: str) -> None:
    for module in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[module]


def _metric_sum(url: str, name: str) -> float:
    """The sum of every sample of ``name`` in the server's ``/metrics``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.split("{", 1)[0].split(" ", 1)[0] == name:
            total += float(line.rsplit(" ", 1)[1])
    return total


def post_json(url: str, body: Any, timeout: float = 60) -> Any:
    """POST ``body`` as JSON and return the decoded answer, or raise with the status and error."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:1000]
        raise PackagingError(f"smoke test: POST {url} answered HTTP {err.code}: {detail}") from None
