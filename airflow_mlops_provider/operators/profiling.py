"""Profile a dataset with whylogs: in one task, or as mapped tasks over its partitions and a merge."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin
from airflow_mlops_provider.openlineage import OpenLineageMixin

if TYPE_CHECKING:
    from airflow.sdk import Context, TaskGroup

    from airflow_mlops_provider.data.partitions import PartitionPlan
    from airflow_mlops_provider.data.profiles import Profile

DEFAULT_CHUNK_ROWS = 250_000
DEFAULT_PARTITION_SIZE = "128MiB"
PLAN_FILE = "plan.json"


class _PublishesProfile(OpenLineageMixin, MlflowHookMixin):
    """Writes a dataset's profile where the data gates look for it (and to an MLflow run when asked)."""

    log: Any
    output_uri: str | None
    storage_conn_id: str | None
    mlflow_run_id: str | None
    mlflow_artifact_path: str

    def publish(self, profile: Profile) -> dict[str, Any]:
        """Write ``profile.bin`` and ``summary.json`` and return what the operators return to XCom."""
        from airflow_mlops_provider import storage
        from airflow_mlops_provider.data.profiles import PROFILE_FILE, SUMMARY_FILE, write_profile

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
        self.record_lineage(inputs=[summary.data_uri], outputs=[output])
        self.log.info(
            "Profiled %s rows x %s columns of %s (%s) into %s",
            summary.rows,
            len(summary.columns),
            summary.data_uri,
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


class WhylogsProfileOperator(_PublishesProfile, BaseOperator):
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
        from airflow_mlops_provider.data.profiles import profile_dataset
        from airflow_mlops_provider.exceptions import dataset_read_errors

        self.log.info("Profiling %s in chunks of %s rows", self.dataset_uri, self.chunk_rows)
        with dataset_read_errors():
            profile = profile_dataset(
                self.dataset_uri,
                file_format=self.file_format,
                chunk_rows=self.chunk_rows,
                timestamp_columns=list(self.timestamp_columns or ()),
            )
        return self.publish(profile)


class WhylogsPartitionPlanOperator(BaseOperator):
    """Split a dataset into partitions to profile as mapped tasks, and write the plan.

    Files up to ``partition_size`` are packed together; a bigger CSV is cut into byte ranges on
    record boundaries and a bigger Parquet file into runs of row groups
    (:func:`~airflow_mlops_provider.data.partitions.plan_partitions`). The plan goes to
    ``<staging_uri>/<plan id>/plan.json``; the plan id covers this DAG run, so a run never merges
    another run's partition profiles. Returns one ``{plan_uri, key, partition}`` per partition: what
    :class:`WhylogsPartitionProfileOperator` is expanded over.

    :param dataset_uri: CSV or Parquet file, directory of partitions, or glob. (templated)
    :param partition_size: Target bytes per partition: ``134217728``, ``"128MiB"``, ``"1GB"``. (templated)
    :param staging_uri: Where the plan and the partition profiles go: storage every worker can reach
        (object storage on Celery or Kubernetes workers); default ``$MLOPS_HOME/profiles/_partitions``. (templated)
    :param file_format: ``csv`` or ``parquet``; inferred from the file suffixes when not given.
    :param chunk_rows: Rows per chunk in each partition's task.
    :param timestamp_columns: Columns to parse as timestamps. (templated)
    :param storage_conn_id: Connection for ``staging_uri`` when it is object storage.
    """

    template_fields: Sequence[str] = ("dataset_uri", "partition_size", "staging_uri", "timestamp_columns")
    ui_color = "#e8f4fa"

    def __init__(
        self,
        *,
        dataset_uri: str,
        partition_size: int | str = DEFAULT_PARTITION_SIZE,
        staging_uri: str | None = None,
        file_format: str | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        timestamp_columns: Sequence[str] = (),
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_uri = dataset_uri
        self.partition_size = partition_size
        self.staging_uri = staging_uri
        self.file_format = file_format
        self.chunk_rows = chunk_rows
        self.timestamp_columns = timestamp_columns
        self.storage_conn_id = storage_conn_id

    def execute(self, context: Context) -> list[dict[str, str]]:
        from airflow_mlops_provider import storage
        from airflow_mlops_provider.data.partitions import plan_partitions
        from airflow_mlops_provider.exceptions import dataset_read_errors

        with dataset_read_errors():
            plan = plan_partitions(
                self.dataset_uri,
                partition_size=self.partition_size,
                file_format=self.file_format,
                chunk_rows=self.chunk_rows,
                timestamp_columns=list(self.timestamp_columns or ()),
                run_key=f"{context['dag'].dag_id}/{context['run_id']}",
            )
        staging = self.staging_uri or storage.default_location("profiles", "_partitions")
        plan_uri = storage.write_bytes(
            storage.join(storage.join(staging, plan.plan_id), PLAN_FILE),
            plan.to_json().encode(),
            self.storage_conn_id,
        )
        split = sum(1 for p in plan.partitions for f in p.files if f.is_slice)
        self.log.info(
            "Planned %s partition(s) of about %s over %s file(s) of %s (%s of them file slices); plan %s",
            len(plan.partitions),
            self.partition_size,
            len(plan.files),
            self.dataset_uri,
            split,
            plan_uri,
        )
        return [{"plan_uri": plan_uri, "key": p.key, "partition": p.describe()} for p in plan.partitions]


class WhylogsPartitionProfileOperator(BaseOperator):
    """Profile one partition of a plan and store its profile under the partition's key.

    Expanded over :class:`WhylogsPartitionPlanOperator`'s result, one mapped task per partition, on
    whichever workers the executor has. A retry overwrites the same ``<key>.partition`` file, so a
    partition is never counted twice. Returns ``{key, rows, profile_uri}``.

    :param partition: One entry of the plan task's result: ``{plan_uri, key}``. (templated)
    :param storage_conn_id: Connection for the staging storage when it is object storage.
    """

    template_fields: Sequence[str] = ("partition",)
    ui_color = "#e8f4fa"

    def __init__(
        self, *, partition: dict[str, str], storage_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.partition = partition
        self.storage_conn_id = storage_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops_provider import storage
        from airflow_mlops_provider.data.partitions import profile_partition
        from airflow_mlops_provider.exceptions import dataset_read_errors

        plan_uri, key = self.partition["plan_uri"], self.partition["key"]
        plan = read_plan(plan_uri, self.storage_conn_id)
        self.log.info("Profiling %s of plan %s", plan.partition(key).describe(), plan.plan_id)
        with dataset_read_errors():
            profiled = profile_partition(plan, key)
        uri = storage.write_bytes(
            partition_profile_uri(plan_uri, key), profiled.to_bytes(), self.storage_conn_id
        )
        self.log.info("Profiled %s rows of partition %s into %s", profiled.tracked.rows, key, uri)
        return {"key": key, "rows": profiled.tracked.rows, "profile_uri": uri}


class WhylogsProfileMergeOperator(_PublishesProfile, BaseOperator):
    """Merge a plan's partition profiles into the dataset's profile, written as a single task writes it.

    Reads exactly one profile per partition of the plan, by key, and refuses, naming it, a
    partition without one (its task failed or never ran) or with one made for other data; then
    checks the files' columns and column types against each other as a single pass does. Writes
    ``profile.bin`` and ``summary.json`` into ``output_uri`` (default
    ``$MLOPS_HOME/profiles/<data fingerprint>``, as :class:`WhylogsProfileOperator`) and returns
    the same ``{profile_uri, summary_uri, rows, columns, data_fingerprint}`` plus ``partitions``.

    :param partitions: The plan task's result (its ``.output``). (templated)
    :param output_uri: Directory for the profile and summary. (templated)
    :param mlflow_run_id: Also log the profile and summary as artifacts of this MLflow run. (templated)
    :param mlflow_artifact_path: Artifact directory in that run.
    :param mlflow_conn_id: The ``mlflow`` connection.
    :param storage_conn_id: Connection for object-storage URIs.
    """

    template_fields: Sequence[str] = ("partitions", "output_uri", "mlflow_run_id")
    ui_color = "#e8f4fa"

    def __init__(
        self,
        *,
        partitions: Any,
        output_uri: str | None = None,
        mlflow_run_id: str | None = None,
        mlflow_artifact_path: str = "profiles",
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.partitions = partitions
        self.output_uri = output_uri
        self.mlflow_run_id = mlflow_run_id
        self.mlflow_artifact_path = mlflow_artifact_path
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_conn_id = storage_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops_provider import storage
        from airflow_mlops_provider.data.partitions import PartitionProfile, merge_partitions
        from airflow_mlops_provider.exceptions import DatasetReadError, dataset_read_errors

        plan_uris = sorted({entry["plan_uri"] for entry in self.partitions or ()})
        if len(plan_uris) != 1:
            raise DatasetReadError(f"expected the partitions of one plan, got plans {plan_uris}")
        plan = read_plan(plan_uris[0], self.storage_conn_id)
        profiles: dict[str, PartitionProfile | None] = {}
        with dataset_read_errors():
            for key in plan.keys:
                uri = partition_profile_uri(plan_uris[0], key)
                try:
                    data = storage.read_bytes(uri, self.storage_conn_id)
                except FileNotFoundError:
                    profiles[key] = None
                    continue
                profiles[key] = PartitionProfile.from_bytes(data, where=uri)
            profile = merge_partitions(plan, profiles)
        self.log.info("Merged %s partition profile(s) of plan %s", len(profiles), plan.plan_id)
        return {**self.publish(profile), "partitions": len(profiles)}


def read_plan(plan_uri: str, storage_conn_id: str | None = None) -> PartitionPlan:
    from airflow_mlops_provider import storage
    from airflow_mlops_provider.data.partitions import PartitionPlan
    from airflow_mlops_provider.exceptions import DatasetReadError

    try:
        return PartitionPlan.from_json(storage.read_bytes(plan_uri, storage_conn_id))
    except FileNotFoundError:
        raise DatasetReadError(
            f"no partition plan at {plan_uri!r}: was the staging storage cleared?"
        ) from None


def partition_profile_uri(plan_uri: str, key: str) -> str:
    """Where partition ``key`` of the plan at ``plan_uri`` keeps its profile: one file per key."""
    return f"{plan_uri.rsplit('/', 1)[0]}/{key}.partition"


def partitioned_profile(
    *,
    group_id: str,
    dataset_uri: str,
    partition_size: int | str = DEFAULT_PARTITION_SIZE,
    output_uri: str | None = None,
    staging_uri: str | None = None,
    file_format: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    timestamp_columns: Sequence[str] = (),
    mlflow_run_id: str | None = None,
    mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
    storage_conn_id: str | None = None,
    max_active_partitions: int | None = None,
) -> TaskGroup:
    """Build ``plan >> profile_partition (mapped) >> merge`` as a TaskGroup; call inside a DAG.

    The profile lands where :class:`WhylogsProfileOperator` puts it and ``<group_id>.merge`` returns
    what it returns, so validation, drift and training read it unchanged.

    :param max_active_partitions: At most this many partitions profiled at once in a run (default:
        as many as the executor runs).
    """
    from airflow.sdk import TaskGroup

    with TaskGroup(group_id=group_id) as group:
        plan = WhylogsPartitionPlanOperator(
            task_id="plan",
            dataset_uri=dataset_uri,
            partition_size=partition_size,
            staging_uri=staging_uri,
            file_format=file_format,
            chunk_rows=chunk_rows,
            timestamp_columns=timestamp_columns,
            storage_conn_id=storage_conn_id,
        )
        profiles = WhylogsPartitionProfileOperator.partial(
            task_id="profile_partition",
            storage_conn_id=storage_conn_id,
            map_index_template="{{ task.partition['partition'] }}",
            max_active_tis_per_dagrun=max_active_partitions,
        ).expand(partition=plan.output)
        merge = WhylogsProfileMergeOperator(
            task_id="merge",
            partitions=plan.output,
            output_uri=output_uri,
            mlflow_run_id=mlflow_run_id,
            mlflow_conn_id=mlflow_conn_id,
            storage_conn_id=storage_conn_id,
        )
        profiles >> merge
    return group
