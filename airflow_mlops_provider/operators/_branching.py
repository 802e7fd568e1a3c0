"""Branching that keeps the task's result: Airflow 3 skips by raising, so ``execute`` never returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.standard.operators.branch import BranchMixIn
    from airflow.sdk import Context


def follow_branches(
    operator: BranchMixIn,
    context: Context,
    branch: Mapping[str, str | Sequence[str]],
    keys: Sequence[str],
    result: Any,
) -> None:
    """Push ``result`` to XCom, then follow the task ids ``branch`` lists under ``keys``.

    ``skip_all_except`` skips the other downstreams by raising ``DownstreamTasksSkipped``; without the
    push here, downstream ``xcom_pull`` of this task would find nothing.
    """
    if getattr(operator, "do_xcom_push", True):
        context["ti"].xcom_push(key="return_value", value=result)
    follow: list[str] = []
    for key in keys:
        chosen = branch.get(key, [])
        follow.extend([chosen] if isinstance(chosen, str) else list(chosen))
    operator.do_branch(context, follow)
