"""Lineage: the names under which every run and model version records where it came from.

One place for the tag keys and evidence artifact paths that the operators write and the gates
read, so that "traceable to its data fingerprint, code version, parameters, image and DAG run"
is one contract rather than strings scattered over modules. Standard library only: the training
runner (inside a pod) and the model server import it too.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

#: Prefix of every tag this provider sets on MLflow runs and model versions.
TAG_PREFIX = "mlops."

# Where the data came from.
TAG_DATA_URI = "mlops.data_uri"
TAG_DATA_FINGERPRINT = "mlops.data_fingerprint"
TAG_EVAL_DATA_URI = "mlops.eval_data_uri"
TAG_EVAL_DATA_FINGERPRINT = "mlops.eval_data_fingerprint"
# What produced the model.
TAG_CODE_VERSION = "mlops.code_version"
TAG_GIT_SHA = "mlops.git_sha"
TAG_IMAGE = "mlops.image"
TAG_ENTRYPOINT = "mlops.entrypoint"
TAG_SEED = "mlops.seed"
#: The target column the runner trained on (reproduction needs it).
TAG_TARGET = "mlops.target"
#: The training params exactly as given (JSON), so that a retrain gets their types back, not
#: MLflow's strings.
TAG_TRAINING_PARAMS = "mlops.training_params"
# What the training run produced.
#: URI of the model the run logged (``models:/<model id>``).
TAG_MODEL_URI = "mlops.model_uri"
#: Why the run failed, when it did.
TAG_ERROR = "mlops.error"
#: ``classification`` or ``regression``: which held-out metrics the run carries.
TAG_TASK_TYPE = "mlops.task_type"
#: Prefix of the environment tags (python and library versions, GPUs).
TAG_ENV_PREFIX = "mlops.env."
TAG_RUNTIME = "mlops.runtime"
# Which Airflow task produced it.
TAG_DAG_ID = "mlops.dag_id"
TAG_DAG_RUN_ID = "mlops.dag_run_id"
TAG_TASK_ID = "mlops.task_id"
TAG_TRY_NUMBER = "mlops.try_number"
# Evidence the promotion gate requires: URIs of the data-validation report and the training-data
# profile, set on the training run by whoever produced them.
TAG_VALIDATION_REPORT_URI = "mlops.evidence.validation_report_uri"
TAG_VALIDATION_STATUS = "mlops.evidence.validation_status"
TAG_TRAINING_PROFILE_URI = "mlops.evidence.training_profile_uri"

# What the packaging step made of a model version (set on the model version).
TAG_BENTO_TAG = "mlops.bento.tag"
TAG_BENTO_ARCHIVE_URI = "mlops.bento.archive_uri"
TAG_BENTO_SMOKE_TEST = "mlops.bento.smoke_test"
TAG_BENTO_IMAGE = "mlops.bento.image"
TAG_BENTO_DOCKERFILE_URI = "mlops.bento.dockerfile_uri"
#: Where the Bento writes its inference capture (absent when packaged with capture off).
TAG_BENTO_CAPTURE_URI = "mlops.bento.capture_uri"
#: The vulnerability gate's verdict on the Bento's requirements: passed, unaudited or skipped.
TAG_BENTO_VULNERABILITY_SCAN = "mlops.bento.vulnerability_scan"

# A version served in shadow beside the champion (set on the shadow's model version).
TAG_SHADOW_BENTO_TAG = "mlops.shadow.bento_tag"
TAG_SHADOW_ARCHIVE_URI = "mlops.shadow.archive_uri"
TAG_SHADOW_CHAMPION_VERSION = "mlops.shadow.champion_version"
TAG_SHADOW_SMOKE_TEST = "mlops.shadow.smoke_test"
#: When the shadow Bento was first built (again after a shadow that ended): the online gate reads the
#: shadow's captures from then on.
TAG_SHADOW_SINCE = "mlops.shadow.since"
#: When, and why, the version left the shadow (withdrawn, or promoted).
TAG_SHADOW_ENDED_AT = "mlops.shadow.ended_at"
TAG_SHADOW_OUTCOME = "mlops.shadow.outcome"

# A reproduction of the version from its lineage (set on the model version).
TAG_REPRODUCTION_OUTCOME = "mlops.reproduction.outcome"
TAG_REPRODUCTION_AT = "mlops.reproduction.checked_at"
TAG_REPRODUCTION_MAX_DIFFERENCE = "mlops.reproduction.max_difference"

#: Artifact paths (relative to a run's artifact root) used when evidence is logged to the run.
ARTIFACT_VALIDATION_REPORT = "evidence/validation_report.json"
ARTIFACT_TRAINING_PROFILE = "evidence/training_profile.bin"

FINGERPRINT_ALGORITHM = "sha256"
_CHUNK = 1 << 20


def _local_path(uri: str | Path) -> Path:
    text = str(uri)
    if text.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(text).path))
    return Path(text)


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def dataset_root(uri: str | Path) -> Path:
    """Return the directory a dataset's file names are relative to (a file is its own root)."""
    text = str(uri)
    if _has_glob(text):
        base = _local_path(text[: min(text.find(ch) for ch in "*?[" if ch in text)])
        return base if str(base).endswith("/") or base.is_dir() else base.parent
    return _local_path(text)


def data_files(uri: str | Path) -> list[Path]:
    """Return the files a dataset URI names: a file, every file under a directory, or a glob's matches.

    Hidden files and directories (``.``/``_`` prefixed, as Spark and Hive write them) are left out.
    The order is sorted, so that it is the same on every machine.
    """
    text = str(uri)
    root = dataset_root(text)
    if _has_glob(text):
        pattern = str(_local_path(text))[len(str(root)) :].lstrip("/")
        files = sorted(p for p in root.glob(pattern) if p.is_file())
    elif root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file())
    elif root.is_file():
        return [root]
    else:
        raise FileNotFoundError(f"no dataset at {text!r}: no such file or directory")
    return [p for p in files if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)]


def relative_name(path: Path, root: Path) -> str:
    """Return ``path``'s name relative to the dataset's ``root``."""
    return path.relative_to(root).as_posix()


def fingerprint_streams(items: Iterable[tuple[str, Callable[[], IO[bytes]]]]) -> str:
    """Return ``sha256:<hex>`` over each item's name and the bytes its opener yields, in order.

    Content-addressed: the same bytes under the same relative names give the same fingerprint on
    any machine and any storage, whatever their absolute location.
    """
    return combine_digests((name, file_digest(opener)) for name, opener in items)


def file_digest(opener: Callable[[], IO[bytes]]) -> str:
    """Return the hex SHA-256 of the bytes ``opener`` yields: one file's part of a fingerprint."""
    digest = hashlib.sha256()
    with opener() as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def combine_digests(items: Iterable[tuple[str, str]]) -> str:
    """Return the fingerprint of files given as ``(name, file_digest)`` in order.

    Files digested apart (by the tasks of a partitioned profile) combine to the same fingerprint as
    :func:`fingerprint_streams` over the same files.
    """
    digest = hashlib.sha256()
    for name, hex_digest in items:
        digest.update(name.encode() + b"\0")
        digest.update(bytes.fromhex(hex_digest))
    return f"{FINGERPRINT_ALGORITHM}:{digest.hexdigest()}"


def _reader(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: path.open("rb")


def data_fingerprint(uri: str | Path) -> str:
    """Return the content fingerprint of the local dataset at ``uri`` (a file, a directory or a glob).

    A single file is fingerprinted by its bytes alone, so a snapshot under another name matches;
    partitions keep their names relative to the dataset's root (partition keys live there).
    """
    files = data_files(uri)
    if not files:
        raise FileNotFoundError(f"no dataset files match {str(uri)!r}")
    root = dataset_root(uri)
    names = ["."] if len(files) == 1 else [relative_name(p, root) for p in files]
    return fingerprint_streams((name, _reader(p)) for name, p in zip(names, files, strict=True))
