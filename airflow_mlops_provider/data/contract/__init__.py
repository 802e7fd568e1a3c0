"""Data contracts: what a dataset must look like, checked against its whylogs profile.

A contract is declared in Python::

    DataContract(
        min_rows=1_000,
        columns={
            "tenure": ColumnRule(dtype="integral", max_null_fraction=0.01, min_value=0, max_value=120),
            "contract": ColumnRule(dtype="string", allowed_values={"month-to-month", "one-year", "two-year"}),
            "signup_date": ColumnRule(dtype="timestamp", max_age="7d", severity="warn"),
        },
    )

or in YAML (same keys; see ``DataContract.from_dict``), or derived from a reference profile (the
champion's training data) with :func:`derive_contract`. Every check has a severity: ``fail`` makes
the gate fail, ``warn`` is reported and lets the run continue.
"""

from airflow_mlops_provider.data.contract.checks import CheckResult, ValidationResult, validate
from airflow_mlops_provider.data.contract.declarations import (
    CHECKS,
    DTYPES,
    SEVERITIES,
    UNIQUE_TOLERANCE,
    ColumnRule,
    ContractError,
    DataContract,
    DType,
    Severity,
    parse_duration,
)
from airflow_mlops_provider.data.contract.derivation import Tolerances, derive_contract, overlay, overlay_rule

__all__ = [
    "CHECKS",
    "DTYPES",
    "SEVERITIES",
    "UNIQUE_TOLERANCE",
    "CheckResult",
    "ColumnRule",
    "ContractError",
    "DType",
    "DataContract",
    "Severity",
    "Tolerances",
    "ValidationResult",
    "derive_contract",
    "overlay",
    "overlay_rule",
    "parse_duration",
    "validate",
]
