"""Datasets by URI: which files they are, what format, their fingerprint, and their rows in chunks.

A dataset is a CSV or Parquet file, a directory of partitions, or a glob. Local paths (and
``file://``) are read directly; any other scheme goes through fsspec, which is what Airflow's
``ObjectStoragePath`` stands on, so ``s3://``, ``gs://``, ``memory://``… work wherever the
filesystem's package is installed. Reading streams in chunks of ``chunk_rows`` rows, so memory
stays flat however large the dataset is.

The reader refuses, naming the file, what would otherwise be profiled quietly wrong: a Parquet file
under a CSV name or CSV text under a Parquet name, a CSV header with a name twice, a header that is
one column because the file is separated by ``;``, tab or ``|``, and a partition whose columns (or
a column that is numbers in one file and text in another) differ from the dataset's other files.
"""

from airflow_mlops_provider.data.datasets.files import (
    BLOCK_BYTES,
    FORMATS,
    PARQUET_MAGIC,
    DatasetError,
    DatasetFile,
    Format,
    detect_format,
    fingerprint,
    resolve,
)
from airflow_mlops_provider.data.datasets.readers import (
    DEFAULT_CHUNK_ROWS,
    as_numpy_dtypes,
    iter_chunks,
    read_dataframe,
)
from airflow_mlops_provider.data.datasets.schemas import FileSchema, check_schemas

__all__ = [
    "BLOCK_BYTES",
    "DEFAULT_CHUNK_ROWS",
    "FORMATS",
    "PARQUET_MAGIC",
    "DatasetError",
    "DatasetFile",
    "FileSchema",
    "Format",
    "as_numpy_dtypes",
    "check_schemas",
    "detect_format",
    "fingerprint",
    "iter_chunks",
    "read_dataframe",
    "resolve",
]
