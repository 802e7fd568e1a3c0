"""Partitioned profiles: a dataset split into partitions, each profiled on its own, merged exactly.

whylogs profiles merge: counts, nulls, types, min and max add up exactly, KLL quantile sketches,
HyperLogLog cardinality and frequent items merge within their sketches' stated error. So a dataset
too big for one worker is profiled as a map over partitions (one task each, on any worker) and a
merge, and the merged profile is the same evidence as a single pass over the dataset: the same
summary, the same data fingerprint, the same URI contract for validation, drift and lineage.

- :func:`plan_partitions` splits the dataset: files smaller than the target size are packed
  together, a bigger CSV is cut into byte ranges on record boundaries (quote-aware, so a newline
  inside a quoted field never splits a row) and a bigger Parquet file into runs of row groups.
- :func:`profile_partition` profiles one partition and returns a :class:`PartitionProfile` that
  carries the partition's spec, so it can be checked against the plan when merged.
- :func:`merge_partitions` takes exactly one profile per partition, keyed by partition, refuses a
  missing, foreign or mismatched one by name, checks the files' schemas against each other as a
  single pass would, and merges.

A file's part of the data fingerprint is the SHA-256 of its bytes: the task that holds its first
rows digests it (a split CSV is digested by the plan, which reads it to find record boundaries).
"""

from airflow_mlops_provider.data.partitions.merge import PartitionProfile, merge_partitions, profile_partition
from airflow_mlops_provider.data.partitions.plan import (
    DEFAULT_PARTITION_BYTES,
    MAX_PARTITIONS,
    Partition,
    PartitionPlan,
    parse_size,
    plan_partitions,
)

__all__ = [
    "DEFAULT_PARTITION_BYTES",
    "MAX_PARTITIONS",
    "Partition",
    "PartitionPlan",
    "PartitionProfile",
    "merge_partitions",
    "parse_size",
    "plan_partitions",
    "profile_partition",
]
