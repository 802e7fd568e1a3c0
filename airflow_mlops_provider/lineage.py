"""Lineage: the names under which every run and model version records where it came from.

One place for the tag keys and evidence artifact paths that the operators write and the gates
read, so that "traceable to its data fingerprint, code version, parameters, image and DAG run"
is one contract rather than strings scattered over modules. Standard library only: the training
runner (inside a pod) and the model server import it too.
"""

from __future__ import annotations

import hashlib
import os.path
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

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


def data_files(uri: str | Path) -> list[Path]:
    """Return the files a dataset URI names: a file, every file under a directory, or a glob's matches.

    Hidden files and directories (``.``/``_`` prefixed, as Spark and Hive write them) are left out.
    The order is sorted, so that it is the same on every machine.
    """
    text = str(uri)
    if any(ch in text for ch in "*?["):
        base = _local_path(text.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0])
        anchor = base if base.is_dir() else base.parent
        pattern = str(_local_path(text))[len(str(anchor)) :].lstrip("/")
        files = sorted(p for p in anchor.glob(pattern) if p.is_file())
    else:
        path = _local_path(text)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            return [path]
        else:
            raise FileNotFoundError(f"no dataset at {text!r}: no such file or directory")
        anchor = path
    return [p for p in files if not any(part.startswith((".", "_")) for part in p.relative_to(anchor).parts)]


def fingerprint_files(files: Iterable[Path], root: Path | None = None) -> str:
    """Return ``sha256:<hex>`` over the files' relative names and bytes, in the given order.

    Content-addressed: the same bytes under the same relative names give the same fingerprint on
    any machine, whatever their absolute location.
    """
    digest = hashlib.sha256()
    for path in files:
        name = path.relative_to(root).as_posix() if root else path.name
        digest.update(name.encode() + b"\0")
        file_digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                file_digest.update(chunk)
        digest.update(file_digest.digest())
    return f"{FINGERPRINT_ALGORITHM}:{digest.hexdigest()}"


def data_fingerprint(uri: str | Path) -> str:
    """Return the content fingerprint of the dataset at ``uri`` (a file, a directory or a glob)."""
    files = data_files(uri)
    if not files:
        raise FileNotFoundError(f"no dataset files match {str(uri)!r}")
    # A single file is fingerprinted by its bytes alone, so a snapshot under another name matches;
    # partitions keep their names relative to their common directory (partition keys live there).
    root = files[0] if len(files) == 1 else Path(os.path.commonpath([str(p.parent) for p in files]))
    return fingerprint_files(files, root)
