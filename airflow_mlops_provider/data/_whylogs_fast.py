"""A vectorised replacement for whylogs' per-value pandas preprocessing of numeric columns.

whylogs 1.6 splits a numeric pandas Series with ``Series.apply(lambda x: np.isinf(x))`` and
``apply(pdc.is_number)``: a Python call per value, which dominates profiling time on wide numeric
data. For NumPy float and integer dtypes, pandas' nullable ``Int64`` and pandas ``string`` columns the
same counts and arrays are computed here with vectorised NumPy (strings are converted to Python
objects once, not once per metric); every other dtype goes to whylogs' own code. The test
suite checks that profiles made with and without it are identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _fast_pandas_split(original: Any) -> Any:
    import numpy as np
    import pandas as pd

    def split(self: Any, series: pd.Series, parse_numeric_string: bool = False) -> None:
        dtype = series.dtype
        if isinstance(dtype, pd.StringDtype):
            return split_strings(self, series)
        numpy_number = isinstance(dtype, np.dtype) and dtype.kind in "fiu"
        if not (numpy_number or isinstance(dtype, pd.Int64Dtype)):
            return original(self, series, parse_numeric_string)
        mask = series.isna().to_numpy()
        self.null_count = int(mask.sum())
        # whylogs counts every null of a numeric column as a NaN too (NaN and pd.NA alike).
        self.nan_count = self.null_count
        non_null = series[~mask]
        if dtype.kind == "f":
            floats = non_null.to_numpy(dtype=float)
            self.inf_count = int(np.isinf(floats).sum())
            self.numpy.floats = floats
        else:
            self.numpy.ints = non_null.to_numpy(dtype=int)
        return None

    def split_strings(self: Any, series: pd.Series) -> None:
        from pandas.core.dtypes import common as pdc

        mask = series.isna().to_numpy()
        self.null_count = int(mask.sum())
        if self.null_count:
            # whylogs' own NaN count, computed on the nulls only (few, and the rule is subtle).
            nulls = series[mask]
            numbers = nulls[nulls.apply(lambda x: pdc.is_number(x))]
            if not numbers.empty:
                self.nan_count = int(numbers.astype(float).isna().sum())
        if self.null_count == len(series):
            return None
        # Python strings once, in an object array: each metric's to_list() is then a cheap copy
        # instead of another conversion out of Arrow.
        self.pandas.strings = pd.Series(series.to_numpy(dtype=object)[~mask], copy=False)
        return None

    return split


@contextmanager
def fast_preprocessing() -> Iterator[None]:
    """Use the vectorised numeric split while the block runs."""
    from whylogs.core.preprocessing import PreprocessedColumn

    original = PreprocessedColumn._pandas_split
    PreprocessedColumn._pandas_split = _fast_pandas_split(original)
    try:
        yield
    finally:
        PreprocessedColumn._pandas_split = original
