"""The small, safe filter language of slice gates (``tenure < 12 and plan in [1, 2]``)."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.exceptions import GateConfigError

if TYPE_CHECKING:
    import pandas as pd


_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.Compare,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
)


def parse_filter(expression: str, where: str = "filter") -> ast.Expression:
    """Parse a slice filter: comparisons of a column with literals, joined by and/or/not.

    ``contract == "month-to-month"``, ``tenure < 12 and region in ["eu", "us"]``. Nothing else (no
    calls, no attributes, no arithmetic), so a gate file cannot run code.
    """
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as err:
        raise GateConfigError(f"{where}: {expression!r} is not a valid filter: {err.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise GateConfigError(
                f"{where}: {expression!r} uses {type(node).__name__}; allowed: comparisons of a column "
                f"with literals (==, !=, <, <=, >, >=, in, not in) joined by and/or/not"
            )
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if not any(isinstance(o, ast.Name) for o in operands):
                raise GateConfigError(f"{where}: {expression!r}: each comparison must name a column")
    return tree


def filter_mask(tree: ast.Expression, frame: pd.DataFrame, expression: str) -> Any:
    """Return the boolean row mask of ``frame`` selected by a parsed filter."""
    import numpy as np

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Name):
            if node.id not in frame.columns:
                raise KeyError(
                    f"filter {expression!r} names column {node.id!r}, not in the evaluation data "
                    f"(columns: {sorted(map(str, frame.columns))})"
                )
            return frame[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        return ast.literal_eval(node)

    def evaluate(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return evaluate(node.body)
        if isinstance(node, ast.BoolOp):
            parts = [evaluate(v) for v in node.values]
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            result = parts[0]
            for part in parts[1:]:
                result = combine(result, part)
            return result
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return np.logical_not(evaluate(node.operand))
        if isinstance(node, ast.Compare):
            result = np.ones(len(frame), dtype=bool)
            left = value(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = value(right_node)
                if isinstance(op, (ast.In, ast.NotIn)):
                    member = left.isin(list(right)) if hasattr(left, "isin") else left in right
                    part = member if isinstance(op, ast.In) else ~member
                else:
                    part = {
                        ast.Eq: lambda a, b: a == b,
                        ast.NotEq: lambda a, b: a != b,
                        ast.Lt: lambda a, b: a < b,
                        ast.LtE: lambda a, b: a <= b,
                        ast.Gt: lambda a, b: a > b,
                        ast.GtE: lambda a, b: a >= b,
                    }[type(op)](left, right)
                result = np.logical_and(result, np.asarray(part, dtype=bool))
                left = right
            return result
        raise GateConfigError(f"filter {expression!r}: unsupported {type(node).__name__}")

    return np.asarray(evaluate(tree), dtype=bool)
