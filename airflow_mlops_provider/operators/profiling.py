"""Profile a dataset with whylogs."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_CHUNK_ROWS = 250_000


class WhylogsProfileOperator(MlflowHookMixin, BaseOperator):
    """Profile a dataset with whylogs, streaming it in chunks, and write the profile and a summary.

    Writes ``profile.bin`` (the whylogs profile) and ``summary.json`` (rows, columns, per-column
    statistics, data fingerprint) into ``output_uri`` and returns ``{profile_uri, summary_uri, rows,
    columns, data_fingerprint}``. Memory stays flat as the dataset grows: only one chunk is in memory.

    :param dataset_uri: CSV or Parquet file, directory of partitions, or glob; local, ``file://`` or any
        fsspec/ObjectStoragePath scheme. (templated)
    :param output_uri: Directory for the profile and summary; default
        ``$MLOPS_HOME/profiles/<data fingerprint>``, so the same data is profiled to the same place. (templated)
    :param file_format: ``csv`` or ``parquet``; inferred from the file suffixes when not given.
    :param chunk_rows: Rows per chunk.
    :param timestamp_columns: Columns to parse as timestamps (for freshness checks). (templated)
    :param mlflow_run_id: Also log the profile and summary as artifacts of this MLflow run. (templated)
    :param mlflow_artifact_path: Artifact directory in that run.
    :param mlflow_conn_id: The ``mlflow`` connection.
    :param storage_conn_id: Connection for ``output_uri`` when it is object storage.
    """

    template_fields: Sequence[str] = ("dataset_uri", "output_uri", "timestamp_columns", "mlflow_run_id")
    ui_color = "#e8f4fa"

    def __init__(
        self,
        *,
        dataset_uri: str,
        output_uri: str | None = None,
        file_format: str | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        timestamp_columns: Sequence[str] = (),
        mlflow_run_id: str | None = None,
        mlflow_artifact_path: str = "profiles",
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_uri = dataset_uri
        self.output_uri = output_uri
        self.file_format = file_format
        self.chunk_rows = chunk_rows
        self.timestamp_columns = timestamp_columns
        self.mlflow_run_id = mlflow_run_id
        self.mlflow_artifact_path = mlflow_artifact_path
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_conn_id = storage_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops_provider import storage
        from airflow_mlops_provider.data.datasets import DatasetError
        from airflow_mlops_provider.data.profiles import (
            PROFILE_FILE,
            SUMMARY_FILE,
            profile_dataset,
            write_profile,
        )
        from airflow_mlops_provider.exceptions import DatasetReadError

        self.log.info("Profiling %s in chunks of %s rows", self.dataset_uri, self.chunk_rows)
        try:
            profile = profile_dataset(
                self.dataset_uri,
                file_format=self.file_format,
                chunk_rows=self.chunk_rows,
                timestamp_columns=list(self.timestamp_columns or ()),
            )
        except DatasetError as err:
            raise DatasetReadError(str(err)) from None
        summary = profile.summary
        output = self.output_uri or storage.default_location("profiles", summary.data_fingerprint)
        with tempfile.TemporaryDirectory() as tmp:
            profile_path, summary_path = write_profile(profile, tmp)
            profile_uri = storage.write_bytes(
                storage.join(output, PROFILE_FILE), Path(profile_path).read_bytes(), self.storage_conn_id
            )
            summary_uri = storage.write_bytes(
                storage.join(output, SUMMARY_FILE), Path(summary_path).read_bytes(), self.storage_conn_id
            )
            if self.mlflow_run_id:
                client = self.mlflow_hook.get_client()
                client.log_artifact(self.mlflow_run_id, profile_path, self.mlflow_artifact_path)
                client.log_artifact(self.mlflow_run_id, summary_path, self.mlflow_artifact_path)
                self.log.info(
                    "Logged the profile to MLflow run %s/%s", self.mlflow_run_id, self.mlflow_artifact_path
                )
        self.log.info(
            "Profiled %s rows x %s columns of %s (%s) into %s",
            summary.rows,
            len(summary.columns),
            self.dataset_uri,
            summary.data_fingerprint,
            output,
        )
        return {
            "profile_uri": profile_uri,
            "summary_uri": summary_uri,
            "rows": summary.rows,
            "columns": summary.columns,
            "data_fingerprint": summary.data_fingerprint,
        }
