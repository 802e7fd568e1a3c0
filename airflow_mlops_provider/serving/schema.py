"""Request schema of a served MLflow model, derived from its signature, and output conversion.

Used by the service inside a Bento and by the packaging smoke test, so that both turn rows into
model input and predictions into JSON the same way. Imports nothing from Airflow.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
)

#: MLflow column type -> (pydantic type of a JSON value, pandas dtype). Numbers are strict: a string
#: is refused rather than parsed; a JSON integer is accepted for a float column.
COLUMN_TYPES: dict[str, tuple[Any, str | None]] = {
    "boolean": (StrictBool, "bool"),
    "integer": (StrictInt, "int32"),
    "long": (StrictInt, "int64"),
    "float": (Annotated[StrictFloat, Field(allow_inf_nan=False)], "float32"),
    "double": (Annotated[StrictFloat, Field(allow_inf_nan=False)], "float64"),
    "string": (StrictStr, None),
    "datetime": (datetime, "datetime64[ns]"),
}

#: Column types in which a null cannot reach the model through MLflow's pyfunc. pandas holds a null
#: there as a float NaN (a batch of nulls alone becomes a float column), and MLflow's schema
#: enforcement refuses a float column for these types. A null in them is refused with a 400 even
#: where the signature marks the column optional; a column that may be null is logged as ``double``.
NOT_NULLABLE_TYPES = frozenset({"boolean", "integer", "long"})


class SignatureError(ValueError):
    """The model's signature cannot describe a request: absent, tensor-based or of unsupported types."""


def input_columns(mlmodel: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the column specs (``name``, ``type``, ``required``) of a parsed MLmodel's input signature.

    :param mlmodel: The ``MLmodel`` file, parsed (``yaml.safe_load``), or ``Model.to_dict()``.
    """
    signature = mlmodel.get("signature") or {}
    if not signature.get("inputs"):
        raise SignatureError("the MLflow model has no input signature, so requests cannot be validated")
    inputs = signature["inputs"]
    columns = json.loads(inputs) if isinstance(inputs, str) else inputs
    if any(c.get("type") == "tensor" or not c.get("name") for c in columns):
        raise SignatureError(
            "the MLflow model's input signature is tensor-based; the service needs named columns"
        )
    unsupported = [f"{c['name']}: {c['type']}" for c in columns if c.get("type") not in COLUMN_TYPES]
    if unsupported:
        raise SignatureError(
            f"the MLflow model's input signature has column types the service cannot validate "
            f"({', '.join(unsupported)}); supported: {sorted(COLUMN_TYPES)}"
        )
    return columns


def nullable(column: dict[str, Any]) -> bool:
    """Whether a request may send ``null`` (or leave out) the column: optional, of a type that can hold it."""
    return not column.get("required", True) and column["type"] not in NOT_NULLABLE_TYPES


def _refuse_null(column_type: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if value is None:
            raise ValueError(
                f"null is not accepted in a {column_type} column, although the signature marks it "
                f"optional: MLflow cannot pass a missing value in a {column_type} column to the model "
                f"(log the column as double to accept nulls)"
            )
        return value

    return BeforeValidator(check)


class StrictRow(BaseModel):
    """Base of a request row: every unknown column refused."""

    model_config = ConfigDict(extra="forbid")


def row_model(columns: list[dict[str, Any]], base: type[BaseModel] = StrictRow) -> type[BaseModel]:
    """Return a pydantic model of one input row: strict types, every unknown column refused.

    :param base: The model's base class (:class:`StrictRow`, or a subclass of it that adds behaviour).

    A column the signature marks optional (``required: false``) accepts ``null`` and may be left out,
    unless its type cannot hold a null on the way to the model (:data:`NOT_NULLABLE_TYPES`).
    """
    fields: dict[str, Any] = {}
    for column in columns:
        annotation = COLUMN_TYPES[column["type"]][0]
        if nullable(column):
            fields[column["name"]] = (annotation | None, None)
        elif column.get("required", True):
            fields[column["name"]] = (annotation, ...)
        else:
            # Left out or null, the error says why an optional column still needs a value.
            refused = Annotated[annotation, _refuse_null(column["type"])]  # type: ignore[valid-type]
            fields[column["name"]] = (refused, Field(default=None, validate_default=True))
    model: type[BaseModel] = create_model("Row", __base__=base, **fields)
    return model


def to_frame(rows: list[dict[str, Any]], columns: list[dict[str, Any]]) -> Any:
    """Return rows as a DataFrame in the signature's column order, with the signature's dtypes.

    A null becomes what pandas and scikit-learn take for a missing value: NaN in a numeric or string
    column (``SimpleImputer`` imputes NaN, not ``None``), NaT in a datetime column.
    """
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame.from_records(rows, columns=[c["name"] for c in columns])
    for column in columns:
        name, dtype = column["name"], COLUMN_TYPES[column["type"]][1]
        values = frame[name]
        if column["type"] in NOT_NULLABLE_TYPES and values.isna().any():
            raise ValueError(
                f"column {name!r} holds a null, which MLflow cannot pass to the model in a "
                f"{column['type']} column"
            )
        if dtype:
            frame[name] = values.astype(dtype)
        else:
            strings = values.to_numpy(dtype=object, copy=True)
            strings[pd.isna(strings)] = np.nan
            frame[name] = pd.Series(strings, index=frame.index, dtype=object)
    return frame


def to_records(frame: Any, columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the signature's columns of ``frame`` as JSON-friendly request rows.

    A column ``frame`` lacks is sent as ``null`` in every row (a sample may leave out optional ones).
    """
    subset = frame.reindex(columns=[c["name"] for c in columns])
    records: list[dict[str, Any]] = json.loads(subset.to_json(orient="records", date_format="iso"))
    return records


def to_json(predictions: Any) -> list[Any]:
    """Return a model's predictions as a JSON-friendly list, one item per input row."""
    import numpy as np
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        if predictions.shape[1] == 1:
            return list(predictions.iloc[:, 0].tolist())
        return list(predictions.to_dict(orient="records"))
    if isinstance(predictions, pd.Series | np.ndarray):
        return list(predictions.tolist())
    return list(predictions)


def compare_predictions(
    expected: list[Any], actual: list[Any], *, rel_tol: float = 1e-6, abs_tol: float = 1e-9
) -> list[str]:
    """Return one line per row where ``actual`` differs from ``expected`` (empty when they agree).

    Labels (strings, integers, booleans) must be equal; floats agree within ``rel_tol``/``abs_tol``;
    dicts and lists are compared item by item.
    """
    if len(expected) != len(actual):
        return [f"expected {len(expected)} predictions, got {len(actual)}"]
    return [
        f"row {i}: expected {want!r}, got {got!r}"
        for i, (want, got) in enumerate(zip(expected, actual, strict=True))
        if not _same(want, got, rel_tol, abs_tol)
    ]


def _same(want: Any, got: Any, rel_tol: float, abs_tol: float) -> bool:
    if isinstance(want, dict) and isinstance(got, dict):
        return want.keys() == got.keys() and all(_same(want[k], got[k], rel_tol, abs_tol) for k in want)
    if isinstance(want, list | tuple) and isinstance(got, list | tuple):
        return len(want) == len(got) and all(
            _same(w, g, rel_tol, abs_tol) for w, g in zip(want, got, strict=True)
        )
    if isinstance(want, float) and isinstance(got, float):
        if math.isnan(want) and math.isnan(got):
            return True
        return math.isclose(want, got, rel_tol=rel_tol, abs_tol=abs_tol)
    # A label that changed type (1 -> 1.0, "1" -> 1) is a different answer, even when Python's == agrees.
    return type(want) is type(got) and bool(want == got)
