"""String options checked where they are given (an operator's ``__init__``), naming the allowed values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

_Option = TypeVar("_Option", bound=str)


def one_of(value: _Option, allowed: Sequence[str], name: str) -> _Option:
    """Return ``value`` when it is one of ``allowed``; else raise ``ValueError`` naming both."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; expected one of {list(allowed)}")
    return value
