"""What the promotion engine shares: the aliases, the tag names it writes, and MLflow errors translated."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from airflow_mlops_provider.exceptions import MlflowConnectionError, PromotionConflict

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"

#: Registered-model tag holding the promotion lease (JSON: token, owner, expiry, intent).
LEASE_TAG = "mlops.promotion.lease"
# Model-version audit tags.
TAG_CANDIDATE_URI = "mlops.promotion.candidate_uri"
TAG_DECISION = "mlops.promotion.decision"
TAG_DECIDED_AT = "mlops.promotion.decided_at"
TAG_REASONS = "mlops.promotion.reasons"
TAG_GATES = "mlops.promotion.gates"
TAG_METRICS = "mlops.promotion.metrics"
TAG_CHAMPION_METRICS = "mlops.promotion.champion_metrics"
#: The candidate's per-group figures and disparities, per fairness gate (JSON).
TAG_FAIRNESS = "mlops.promotion.fairness"
TAG_EVALUATED_AGAINST = "mlops.promotion.evaluated_against_version"
TAG_PREVIOUS_CHAMPION = "mlops.promotion.previous_champion_version"
TAG_PROMOTED_BY = "mlops.promotion.promoted_by"
TAG_SUPERSEDED_BY = "mlops.promotion.superseded_by_version"
TAG_SUPERSEDED_AT = "mlops.promotion.superseded_at"
TAG_APPROVAL = "mlops.approval.decision"
TAG_APPROVED_BY = "mlops.approval.by"
TAG_APPROVED_AT = "mlops.approval.at"
TAG_DRIFT_SUMMARY = "mlops.promotion.drift_summary"
TAG_DAG_RUN = "mlops.promotion.dag_run"
TAG_ROLLED_BACK_AT = "mlops.rollback.rolled_back_at"
TAG_ROLLED_BACK_TO = "mlops.rollback.replaced_by_version"
TAG_ROLLBACK_REASON = "mlops.rollback.reason"
TAG_ROLLBACK_BY = "mlops.rollback.by"
TAG_RESTORED_AT = "mlops.rollback.restored_at"
TAG_RESTORED_FROM = "mlops.rollback.restored_from_version"
TAG_STATUS = "mlops.status"

#: Model-version tag values are kept under this many characters (SQL stores' column limits vary).
MAX_TAG_VALUE = 5000
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _tag_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 3] + "..."


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def is_unreachable(err: BaseException) -> bool:
    """Whether ``err`` means MLflow could not be reached (as opposed to a refusal or a bad request)."""
    import requests

    text = str(err)
    return isinstance(
        err, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)
    ) or any(
        marker in text
        for marker in ("Max retries exceeded", "Connection refused", "ConnectionError", "Read timed out")
    )


@contextmanager
def translate_unreachable(tracking_uri: str, doing: str) -> Iterator[None]:
    """Turn an unreachable-server error into :class:`MlflowConnectionError` naming what was being done."""
    try:
        yield
    except (MlflowConnectionError, PromotionConflict):
        raise
    except Exception as err:
        if is_unreachable(err):
            raise MlflowConnectionError(
                f"MLflow at {tracking_uri} became unreachable while {doing}: {type(err).__name__}: "
                f"{str(err)[:300]}"
            ) from err
        raise
