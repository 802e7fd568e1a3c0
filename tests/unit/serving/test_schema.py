"""The request schema derived from an MLflow signature, and the smoke test's prediction comparison."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from airflow_mlops_provider.serving.schema import (
    SignatureError,
    compare_predictions,
    input_columns,
    row_model,
    to_frame,
)

COLUMNS = [
    {"type": "long", "name": "tenure", "required": True},
    {"type": "string", "name": "contract", "required": True},
    {"type": "double", "name": "monthly_charges", "required": True},
    {"type": "boolean", "name": "senior", "required": False},
]
MLMODEL = {"signature": {"inputs": json.dumps(COLUMNS), "outputs": "[]"}}
GOOD = {"tenure": 3, "contract": "one-year", "monthly_charges": 70, "senior": True}


def test_input_columns_come_from_the_signature() -> None:
    assert input_columns(MLMODEL) == COLUMNS


@pytest.mark.parametrize(
    ("mlmodel", "message"),
    [
        pytest.param({}, "no input signature", id="no-signature"),
        pytest.param(
            {"signature": {"inputs": json.dumps([{"type": "tensor", "tensor-spec": {}}])}},
            "tensor-based",
            id="tensor",
        ),
        pytest.param(
            {"signature": {"inputs": json.dumps([{"type": "binary", "name": "blob"}])}},
            "blob: binary",
            id="unsupported-type",
        ),
    ],
)
def test_input_columns_refuse_what_cannot_be_validated(mlmodel: dict[str, Any], message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        input_columns(mlmodel)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        pytest.param({k: v for k, v in GOOD.items() if k != "contract"}, "contract", id="missing"),
        pytest.param({**GOOD, "tenure": "3"}, "tenure", id="string-for-integer"),
        pytest.param({**GOOD, "tenure": 3.5}, "tenure", id="float-for-integer"),
        pytest.param({**GOOD, "monthly_charges": "70"}, "monthly_charges", id="string-for-double"),
        pytest.param({**GOOD, "contract": 1}, "contract", id="number-for-string"),
        pytest.param({**GOOD, "extra": 1}, "extra", id="unknown-column"),
    ],
)
def test_row_model_names_the_bad_field(row: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        row_model(COLUMNS).model_validate(row)
    assert [e["loc"][0] for e in err.value.errors()] == [field]


def test_rows_become_a_frame_with_the_signature_dtypes() -> None:
    row = row_model(COLUMNS).model_validate({k: v for k, v in GOOD.items() if k != "senior"})
    frame = to_frame([row.model_dump()], COLUMNS)
    assert list(frame.columns) == [c["name"] for c in COLUMNS]
    assert str(frame["tenure"].dtype) == "int64"
    assert str(frame["monthly_charges"].dtype) == "float64"
    assert frame["senior"].isna().all()


@pytest.mark.parametrize(
    ("expected", "actual", "differences"),
    [
        pytest.param([0, 1, 1], [0, 1, 1], 0, id="equal-labels"),
        pytest.param([0, 1, 1], [0, 0, 1], 1, id="different-label"),
        pytest.param(["yes"], ["no"], 1, id="different-string"),
        pytest.param([1], [1.0], 1, id="label-type-changed"),
        pytest.param([0.25, 0.5], [0.25 + 1e-12, 0.5], 0, id="float-within-tolerance"),
        pytest.param([0.25], [0.2501], 1, id="float-beyond-tolerance"),
        pytest.param([{"p": 0.1, "label": 0}], [{"p": 0.1, "label": 1}], 1, id="record-differs"),
        pytest.param([0, 1], [0], 1, id="missing-prediction"),
    ],
)
def test_compare_predictions(expected: list[Any], actual: list[Any], differences: int) -> None:
    assert len(compare_predictions(expected, actual)) == differences
