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
    to_records,
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
    row = row_model(COLUMNS).model_validate(GOOD)
    frame = to_frame([row.model_dump()], COLUMNS)
    assert list(frame.columns) == [c["name"] for c in COLUMNS]
    assert str(frame["tenure"].dtype) == "int64"
    assert str(frame["monthly_charges"].dtype) == "float64"
    assert str(frame["senior"].dtype) == "bool"


#: A signature with optional columns of every type a null can reach the model in, and required ones.
NULLABLE = [
    {"type": "long", "name": "visits", "required": True},
    {"type": "double", "name": "spend", "required": False},
    {"type": "float", "name": "score", "required": False},
    {"type": "string", "name": "plan", "required": False},
    {"type": "datetime", "name": "signup", "required": False},
    {"type": "string", "name": "region", "required": True},
]
FILLED = {
    "visits": 4,
    "spend": 12.5,
    "score": 0.5,
    "plan": "pro",
    "signup": "2026-01-02T00:00:00",
    "region": "eu",
}


@pytest.mark.parametrize(
    "row",
    [
        pytest.param({**FILLED, "spend": None, "score": None, "plan": None, "signup": None}, id="nulls"),
        pytest.param({"visits": 4, "region": "eu"}, id="left-out"),
    ],
)
def test_optional_columns_accept_null(row: dict[str, Any]) -> None:
    dumped = row_model(NULLABLE).model_validate(row).model_dump()
    assert [name for name, value in dumped.items() if value is None] == ["spend", "score", "plan", "signup"]


@pytest.mark.parametrize("field", ["visits", "region"])
def test_required_columns_refuse_null_naming_the_field(field: str) -> None:
    with pytest.raises(ValidationError) as err:
        row_model(NULLABLE).model_validate({**FILLED, field: None})
    assert [e["loc"][0] for e in err.value.errors()] == [field]


@pytest.mark.parametrize(
    ("column", "row"),
    [
        pytest.param({"type": "long", "name": "tenure", "required": False}, {"tenure": None}, id="long-null"),
        pytest.param({"type": "integer", "name": "tenure", "required": False}, {}, id="integer-left-out"),
        pytest.param(
            {"type": "boolean", "name": "senior", "required": False}, {"senior": None}, id="boolean"
        ),
    ],
)
def test_optional_integer_and_boolean_columns_refuse_null_saying_why(
    column: dict[str, Any], row: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError) as err:
        row_model([column]).model_validate(row)
    errors = err.value.errors()
    assert [e["loc"][0] for e in errors] == [column["name"]]
    assert f"MLflow cannot pass a missing value in a {column['type']} column" in errors[0]["msg"]


def test_mlflow_refuses_a_null_in_an_integer_column_so_the_service_does_too() -> None:
    """Why optional integer columns still refuse null: if MLflow learns to take one, lift the refusal."""
    import pandas as pd
    from mlflow.exceptions import MlflowException
    from mlflow.models import validate_schema
    from mlflow.types import Schema

    schema = Schema.from_json(json.dumps([{"type": "long", "name": "tenure", "required": False}]))
    for values in (
        pd.Series([3.0, float("nan")]),
        pd.Series([None], dtype=object),
        pd.Series([3, None], dtype="Int64"),
    ):
        with pytest.raises((MlflowException, ValueError), match=r"tenure|NA to integer"):
            validate_schema(pd.DataFrame({"tenure": values}), schema)


def test_nulls_reach_the_model_as_the_missing_values_mlflow_and_sklearn_handle() -> None:
    import numpy as np
    import pandas as pd
    from mlflow.models import validate_schema
    from mlflow.types import Schema
    from sklearn.impute import SimpleImputer

    Row = row_model(NULLABLE)
    rows = [
        Row.model_validate(r).model_dump()
        for r in ({**FILLED, "plan": "basic"}, {"visits": 1, "region": "us"})
    ]
    for batch in (rows, rows[1:]):  # a batch of nulls alone must not change a column's dtype
        frame = to_frame(batch, NULLABLE)
        assert frame.dtypes.astype(str).to_dict() == {
            "visits": "int64",
            "spend": "float64",
            "score": "float32",
            "plan": "object",
            "signup": "datetime64[ns]",
            "region": "object",
        }
        nulls = frame.iloc[-1]
        assert np.isnan(nulls["spend"])
        assert np.isnan(nulls["score"])
        assert nulls["signup"] is pd.NaT
        # NaN, not None: SimpleImputer takes only NaN for missing in a string column.
        assert isinstance(nulls["plan"], float)
        assert np.isnan(nulls["plan"])
        validate_schema(frame, Schema.from_json(json.dumps(NULLABLE)))
    imputer = SimpleImputer(strategy="most_frequent").fit(pd.DataFrame({"plan": ["pro", "pro", "basic"]}))
    assert imputer.transform(to_frame(rows, NULLABLE)[["plan"]]).ravel().tolist() == ["basic", "pro"]


def test_to_frame_refuses_a_null_in_an_integer_column_naming_it() -> None:
    with pytest.raises(ValueError, match="column 'visits' holds a null"):
        to_frame([{**FILLED, "visits": None}], NULLABLE)


def test_to_records_sends_null_for_a_column_the_sample_lacks() -> None:
    import pandas as pd

    sample = pd.DataFrame([{k: v for k, v in FILLED.items() if k != "plan"}])
    records = to_records(sample, NULLABLE)
    assert records[0]["plan"] is None
    assert records[0]["visits"] == 4
    assert row_model(NULLABLE).model_validate(records[0]).plan is None


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
