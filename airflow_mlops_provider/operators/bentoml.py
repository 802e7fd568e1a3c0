"""Package a registered MLflow model version as a smoke-tested BentoML Bento."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlops_provider import lineage
from airflow_mlops_provider.bentos.build import (
    LABEL_DATA_FINGERPRINT,
    LABEL_MODEL_NAME,
    LABEL_MODEL_VERSION,
    LABEL_RUN_ID,
    bento_name,
    bentoml_env,
    servable_columns,
)
from airflow_mlops_provider.exceptions import PackagingError
from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin
from airflow_mlops_provider.openlineage import OpenLineageMixin, bento_uri, model_version_uri

if TYPE_CHECKING:
    from airflow.sdk import Context
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from airflow_mlops_provider.bentos.smoke import SmokeTest
    from airflow_mlops_provider.serving.capture import CaptureConfig
    from airflow_mlops_provider.serving.shadow import ShadowConfig
    from airflow_mlops_provider.vulnerabilities import VulnerabilityPolicy


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
        self._smoke: SmokeTest | None = None

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
        columns = servable_columns(model_uri)
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
            settings = self.shadow_config(columns, servable_columns(shadow_uri))
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

        from airflow_mlops_provider.bentos import build

        created: build.Created = []
        try:
            bento_model = build.import_model(model_tag, model_uri, labels, created, self.log)
            if shadow is not None:
                shadow["bento_model"] = build.import_model(
                    shadow["tag"], shadow["model_uri"], shadow["labels"], created, self.log
                )
            card = self.model_card_files(mv)
            service = {
                "max_batch_size": self.max_batch_size,
                "max_latency_ms": self.max_latency_ms,
                "workers": self.workers,
                "timeout_s": self.request_timeout_s,
            }
            bento = build.build_bento(
                tag, bento_model, labels, capture, service, created, self.log, shadow, card
            )
            if self.smoke_test:
                smoke = self.run_smoke_test(tag, model_uri, bento_model, columns, shadow)
            else:
                self.log.warning("Smoke test disabled: Bento %s is exported untested", tag)
                smoke = {"status": "skipped"}
            scan = self.scan_vulnerabilities(build.bento_requirements(bento_model, shadow))
            archive_uri = build.export_archive(bento, self.export_uri, created)
            image, dockerfile_uri = build.image_or_dockerfile(
                tag, Path(archive_uri).parent, self.container_backend, self.log
            )
        except BaseException:
            build.delete_created(created, self.log)
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

    def run_smoke_test(
        self,
        tag: str,
        model_uri: str,
        bento_model: Any,
        columns: list[dict[str, Any]],
        shadow: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Serve the Bento on loopback and require its predictions to equal the pyfunc model's
        (:class:`~airflow_mlops_provider.bentos.smoke.SmokeTest`)."""
        from airflow_mlops_provider.bentos.smoke import SmokeTest, smoke_sample

        sample = smoke_sample(bento_model, columns, self.eval_data_uri, self.smoke_rows)
        self._smoke = SmokeTest(
            tag,
            model_uri,
            columns,
            self.log,
            max_batch_size=self.max_batch_size,
            serve_timeout_s=self.serve_timeout_s,
            rel_tol=self.rel_tol,
        )
        try:
            return self._smoke.run(sample, shadow)
        finally:
            self._smoke = None

    def on_kill(self) -> None:
        smoke = self._smoke
        if smoke is not None:
            try:
                smoke.stop()
            except Exception as err:
                self.log.warning("Could not stop the smoke-test server: %s", err)


__all__ = [
    "LABEL_DATA_FINGERPRINT",
    "LABEL_MODEL_NAME",
    "LABEL_MODEL_VERSION",
    "LABEL_RUN_ID",
    "BentoPackageOperator",
    "bento_name",
    "bentoml_env",
]
