"""Import MLflow models into the BentoML store, build Bentos of them and export the archives.

What a function adds to the store it appends to ``created`` (``(kind, tag)``), so that a caller
whose later step fails can remove it again with :func:`delete_created`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.exceptions import PackagingError

if TYPE_CHECKING:
    from airflow_mlops_provider.serving.capture import CaptureConfig

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

Created = list[tuple[str, str]]


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


def servable_columns(model_uri: str) -> list[dict[str, Any]]:
    """Return the input columns of the model at ``model_uri``, or raise unless BentoML can serve it:
    it must have the ``python_function`` flavor and a column-based signature."""
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


def existing_from_same_run(
    get: Callable[[str], Any], tag: str, labels: Mapping[str, str], store: str, delete_cmd: str
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


def import_model(tag: str, model_uri: str, labels: Mapping[str, str], created: Created, log: Any) -> Any:
    """Import the MLflow model at ``model_uri`` into the BentoML model store as ``tag`` (or reuse it)."""
    import bentoml

    existing = existing_from_same_run(
        bentoml.models.get, tag, labels, "BentoML model store", f"bentoml models delete {tag}"
    )
    if existing is not None:
        log.info("BentoML model %s already imported: reusing it", tag)
        return existing
    log.info("Importing %s into the BentoML model store as %s", model_uri, tag)
    # BentoML writes the model aside and saves it only when the import succeeds.
    model = bentoml.mlflow.import_model(
        tag,
        model_uri,
        signatures={"predict": {"batchable": True}},
        labels=dict(labels),
        metadata={"mlflow_model_uri": model_uri},
    )
    created.append(("model", tag))
    return model


def build_bento(
    tag: str,
    bento_model: Any,
    labels: Mapping[str, str],
    capture: CaptureConfig,
    service: Mapping[str, Any],
    created: Created,
    log: Any,
    shadow: Mapping[str, Any] | None = None,
    card: Mapping[str, str] | None = None,
) -> Any:
    """Build (or reuse) the Bento ``tag`` serving ``bento_model`` with the provider's service.

    :param service: The service's settings: ``max_batch_size``, ``max_latency_ms``, ``workers`` and
        ``timeout_s``.
    :param shadow: The model served in shadow: its ``bento_model``, ``labels`` and ``settings``.
    :param card: The model card's files (name -> text), served at ``/model_card``.
    """
    import bentoml

    from airflow_mlops_provider import serving

    existing = existing_from_same_run(bentoml.get, tag, labels, "Bento store", f"bentoml delete {tag}")
    if existing is not None:
        log.info("Bento %s already built: reusing it", tag)
        built = built_capture(existing)
        if built != capture.to_dict():
            log.warning(
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
            **service,
            "labels": dict(labels),
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
        Path(ctx, "requirements.txt").write_text("\n".join(bento_requirements(bento_model, shadow)) + "\n")
        python = {"requirements_txt": "requirements.txt", "lock_packages": False}
        log.info("Building Bento %s", tag)
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
                labels=dict(labels),
                description=f"MLflow model {labels[LABEL_MODEL_NAME]} version {labels[LABEL_MODEL_VERSION]}"
                + (f", v{shadow['labels'][LABEL_MODEL_VERSION]} in shadow" if shadow else ""),
                python=python,
            )
        finally:
            _forget_modules(SERVING_PACKAGE)
        created.append(("bento", tag))
        return bento


def delete_created(created: Created, log: Any) -> None:
    """Remove what was created, newest first: a ``bento`` or ``model`` by tag, an ``archive`` by path."""
    import bentoml

    for kind, tag in reversed(created):
        try:
            if kind == "archive":
                Path(tag).unlink(missing_ok=True)
            elif kind == "bento":
                bentoml.delete(tag)
            else:
                bentoml.models.delete(tag)
            log.info("Removed half-built %s %s from the BentoML store", kind, tag)
        except Exception as err:
            log.warning("Could not remove %s %s from the BentoML store: %s", kind, tag, err)


def export_archive(bento: Any, export_uri: str | None, created: Created) -> str:
    """Export ``bento`` as ``<name>-<version>.bento`` under ``export_uri`` (default
    ``$MLOPS_HOME/bentos``) and return the archive's path."""
    import bentoml

    from airflow_mlops_provider.hooks.mlflow import mlops_home

    directory = Path(export_uri or mlops_home() / "bentos")
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


def image_or_dockerfile(
    tag: str, directory: Path, backend: str | None, log: Any
) -> tuple[str | None, str | None]:
    """Build the Bento's image with ``backend`` where it works, and return ``(image, None)``; else
    write its Dockerfile into ``directory`` and return ``(None, dockerfile)``."""
    import bentoml

    if backend and backend_works(backend):
        log.info("Building container image %s with %s", tag, backend)
        build: Any = bentoml.container.build  # overloaded per backend literal
        build(tag, backend=backend, image_tag=(tag,))
        return tag, None
    if backend:
        log.warning("Image builder %r is not available here: container image skipped", backend)
    else:
        log.info("No image builder configured: container image skipped")
    dockerfile = directory / f"{tag.replace(':', '-')}.Dockerfile"
    bentoml.container.get_containerfile(tag, output_path=str(dockerfile))
    log.info("Dockerfile for %s written to %s", tag, dockerfile)
    return None, str(dockerfile)


def backend_works(backend: str) -> bool:
    """Return whether the image builder ``backend`` is installed and answers; refuse an unknown one."""
    if backend not in CONTAINER_BACKENDS:
        raise PackagingError(f"container_backend={backend!r}; expected one of {list(CONTAINER_BACKENDS)}")
    executable = shutil.which(backend)
    if not executable:
        return False
    probe = [executable, "info"] if backend in ("docker", "podman", "nerdctl") else [executable, "--version"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


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


def built_capture(bento: Any) -> dict[str, Any] | None:
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
