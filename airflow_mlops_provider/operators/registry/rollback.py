"""ModelRollbackOperator: move champion back to a previous version, under the lease, with audit tags."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.exceptions import (
    PromotionConflict,
)
from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlops_provider.promotion import LeaseSettings
from airflow_mlops_provider.operators.registry.base import _owner, _RegistryOperator


class ModelRollbackOperator(_RegistryOperator):
    """Move ``champion`` back to ``previous_champion`` (or to a given version) and record why.

    Runs under the same per-model lease as promotions. The restored version's own predecessor (the
    ``previous_champion`` when it was promoted) becomes ``previous_champion``, so a second rollback
    goes further back rather than re-promoting the model just rolled back; when there is none the
    alias is removed. Both versions get tags saying when, why and by which DAG run.

    :param registered_model_name: The registered model (templated).
    :param reason: Why, recorded on both versions (templated).
    :param to_version: Version to restore; default ``previous_champion`` (templated).
    :param expected_champion_version: Refuse unless the champion is this version (templated).
    :param lease: Timing of the per-model promotion lease.
    :param mlflow_conn_id: The ``mlflow`` connection.
    """

    template_fields: Sequence[str] = (
        "registered_model_name",
        "reason",
        "to_version",
        "expected_champion_version",
    )

    def __init__(
        self,
        *,
        registered_model_name: str,
        reason: str,
        to_version: str | int | None = None,
        expected_champion_version: str | int | None = None,
        lease: LeaseSettings | None = None,
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.reason = reason
        self.to_version = to_version
        self.expected_champion_version = expected_champion_version
        self.lease = lease
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops_provider import promotion as p

        if not str(self.reason or "").strip():
            raise ValueError("reason is empty; a rollback must say why")
        name = self.registered_model_name
        client = self.mlflow_hook.get_client()
        uri = self.mlflow_hook.tracking_uri
        with (
            p.translate_unreachable(uri, f"rolling back {name}"),
            p.RegistryLease(client, name, _owner(context), self._lease_settings(), self.log) as lease,
        ):
            p.repair_interrupted(client, name, lease, self.log)
            aliases = p.read_state(client, name).aliases
            current = aliases.get(p.CHAMPION)
            if (
                self.expected_champion_version not in (None, "")
                and str(self.expected_champion_version) != current
            ):
                raise PromotionConflict(
                    f"champion of {name!r} is {current}, not v{self.expected_champion_version}; not rolling back"
                )
            target = (
                str(self.to_version)
                if self.to_version not in (None, "")
                else aliases.get(p.PREVIOUS_CHAMPION)
            )
            if target is None:
                raise PromotionConflict(f"{name!r} has no previous_champion to roll back to; give to_version")
            if current is None:
                raise PromotionConflict(f"{name!r} has no champion to roll back")
            if target == current:
                raise PromotionConflict(f"v{target} is already the champion of {name!r}")
            mv = p.wait_until_ready(client, name, target, timeout_s=0)
            before = mv.tags.get(p.TAG_PREVIOUS_CHAMPION)
            new_previous = before if before not in (None, "none", current, target) else None
            moved = p.move_champion(
                client, name, lease, expected_champion=current, new_champion=target, new_previous=new_previous
            )
        now = p.utcnow_iso()
        by = _owner(context)
        with p.translate_unreachable(uri, f"recording the rollback of {name}"):
            p.set_version_tags(
                client,
                name,
                current,
                {
                    p.TAG_ROLLED_BACK_AT: now,
                    p.TAG_ROLLED_BACK_TO: target,
                    p.TAG_ROLLBACK_REASON: self.reason,
                    p.TAG_ROLLBACK_BY: by,
                    p.TAG_STATUS: "rolled_back",
                },
            )
            p.set_version_tags(
                client,
                name,
                target,
                {
                    p.TAG_RESTORED_AT: now,
                    p.TAG_RESTORED_FROM: current,
                    p.TAG_ROLLBACK_REASON: self.reason,
                    p.TAG_ROLLBACK_BY: by,
                    p.TAG_STATUS: "champion",
                },
            )
        self._push_links(context, name, target, None)
        self.log.info("Rolled back %s: champion v%s -> v%s (%s)", name, current, target, self.reason)
        return {
            "decision": "rolled_back",
            "registered_model_name": name,
            "rolled_back_version": current,
            "reason": self.reason,
            **moved,
        }
