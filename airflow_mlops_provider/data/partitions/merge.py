"""Partition profiles: each partition profiled on its own, checked against its plan, and merged exactly."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_mlops_provider.data.datasets import (
    DatasetError,
    FileSchema,
    check_schemas,
)
from airflow_mlops_provider.data.partitions.plan import Partition, PartitionPlan
from airflow_mlops_provider.lineage import combine_digests, file_digest

if TYPE_CHECKING:
    from airflow_mlops_provider.data.profiles import Profile, Tracked

_MAGIC = b"mlops-partition-profile/1\n"


@dataclass
class PartitionProfile:
    """One partition's profile, with what the merge checks it against.

    :param digests: File name to the SHA-256 of its bytes, for the files this partition digested.
    """

    plan_id: str
    partition: Partition
    tracked: Tracked
    digests: dict[str, str]

    def to_bytes(self) -> bytes:
        meta = {
            "plan_id": self.plan_id,
            "partition": self.partition.to_dict(),
            "rows": self.tracked.rows,
            "columns": self.tracked.columns,
            "timestamps": sorted(self.tracked.timestamps),
            "schemas": [s.to_dict() for s in self.tracked.schemas or ()],
            "digests": self.digests,
        }
        return _MAGIC + json.dumps(meta, default=str).encode() + b"\n" + self.tracked.view.serialize()

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "") -> PartitionProfile:
        from whylogs.core import DatasetProfileView

        from airflow_mlops_provider.data.profiles import Tracked

        if not data.startswith(_MAGIC):
            raise DatasetError(
                f"{where or 'data'} is not a partition profile (it does not start with {_MAGIC!r})"
            )
        head, _, body = data[len(_MAGIC) :].partition(b"\n")
        try:
            meta = json.loads(head)
            view = DatasetProfileView.deserialize(body)
        except Exception as err:
            raise DatasetError(
                f"{where or 'partition profile'} is damaged: {type(err).__name__}: {err}"
            ) from None
        tracked = Tracked(
            view,
            int(meta["rows"]),
            list(meta["columns"]),
            set(meta["timestamps"]),
            [FileSchema.from_dict(s) for s in meta["schemas"]],
        )
        return cls(meta["plan_id"], Partition.from_dict(meta["partition"]), tracked, dict(meta["digests"]))


def profile_partition(plan: PartitionPlan, key: str) -> PartitionProfile:
    """Profile the partition ``key`` of ``plan`` and digest the files it is to digest."""
    from airflow_mlops_provider.data.profiles import track

    partition = plan.partition(key)
    schemas: list[FileSchema] = []
    tracked = track(
        partition.files,
        plan.file_format,
        chunk_rows=plan.chunk_rows,
        timestamp_columns=plan.timestamp_columns,
        schemas=schemas,
    )
    by_name = {f.name: f.whole() for f in partition.files}
    digests = {name: file_digest(by_name[name].open) for name in partition.digests}
    return PartitionProfile(plan.plan_id, partition, tracked, digests)


def _file_schemas(slices: Iterable[Iterable[FileSchema]]) -> list[FileSchema]:
    """One schema per file from its slices' (in order): a column with text in any slice is text.

    A single pass types a file by its first chunk; a slice's first chunk is only its own. Text
    anywhere in the file wins, so the partitioned check is never laxer than the single pass.
    """
    files: dict[str, FileSchema] = {}
    for schema in (s for group in slices for s in group):
        seen = files.get(schema.name)
        if seen is None:
            files[schema.name] = schema
            continue
        kinds = dict(seen.kinds)
        for column, (kind, example) in schema.kinds.items():
            if column not in kinds or (kind == "text" and kinds[column][0] != "text"):
                kinds[column] = (kind, example)
        files[schema.name] = FileSchema(seen.uri, seen.name, seen.columns, kinds)
    return list(files.values())


def merge_partitions(plan: PartitionPlan, profiles: Mapping[str, PartitionProfile | None]) -> Profile:
    """Merge one profile per partition of ``plan`` into the dataset's profile.

    ``profiles`` maps each partition key to its profile (``None``, or no entry, for one that was not
    found). Refuses, naming the partition, one that is missing, belongs to another plan or holds
    other files; then checks every file's schema against the others, in dataset order, as
    profiling the dataset in one pass does.
    """
    from airflow_mlops_provider.data.profiles import Tracked, summarize

    extra = sorted(set(profiles) - set(plan.keys))
    if extra:
        raise DatasetError(
            f"profiles {extra} are not partitions of plan {plan.plan_id}; its partitions are {plan.keys}"
        )
    ordered = []
    for partition in plan.partitions:
        found = profiles.get(partition.key)
        if found is None:
            raise DatasetError(
                f"{partition.describe()} of plan {plan.plan_id} has no profile: its task has not succeeded; "
                f"nothing was merged"
            )
        if found.plan_id != plan.plan_id or found.partition != partition:
            raise DatasetError(
                f"the profile stored for {partition.describe()} was made for {found.partition.describe()} "
                f"of plan {found.plan_id}, not for plan {plan.plan_id}; nothing was merged"
            )
        ordered.append(found)
    check_schemas(_file_schemas(p.tracked.schemas or () for p in ordered))
    view = ordered[0].tracked.view
    for p in ordered[1:]:
        view = view.merge(p.tracked.view)
    digests = {**plan.digests}
    for p in ordered:
        digests.update(p.digests)
    missing = [name for _, name in plan.files if name not in digests]
    if missing:
        raise DatasetError(
            f"no digest of file(s) {missing[:5]} in the partition profiles of plan {plan.plan_id}"
        )
    columns = next((p.tracked.columns for p in ordered if p.tracked.columns), [])
    tracked = Tracked(
        view,
        sum(p.tracked.rows for p in ordered),
        columns,
        set().union(*(p.tracked.timestamps for p in ordered)),
    )
    return summarize(
        tracked,
        uri=plan.dataset_uri,
        data_fingerprint=combine_digests((fp, digests[name]) for fp, name in plan.files),
        files=len(plan.files),
        timestamp_columns=plan.timestamp_columns,
    )
