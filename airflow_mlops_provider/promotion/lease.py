"""The registry lease that serialises promotions and rollbacks of a model, and the alias moves made under it.

Concurrency. MLflow sets an alias last-writer-wins and has no compare-and-set. Promotions and
rollbacks of one registered model are serialised by :class:`RegistryLease`, a lease kept in a
registered-model tag and taken with Fischer's timed mutual-exclusion protocol:

1. wait until the tag is free (absent, or stale: unchanged for ``ttl_s`` on the waiter's own clock,
   or past its expiry by more than ``ttl_s`` on the wall clock);
2. write one's own random token, and check the read-to-write-done time stayed under ``max_write_s``
   (if not, the attempt does not count and the token is left to go stale);
3. wait ``settle_s`` (> ``max_write_s``), read again, and enter only if one's own token is still there.

Any contender that saw the tag free before our write wrote its own token within ``max_write_s`` of
that read, so before our second read: we see its token and back off. At most one holder at a time,
without clocks agreeing across machines. Inside, the holder re-checks the token before every alias
write (fail closed if it was lost), writes a write-ahead *intent* (aliases before and after) into the
lease, then writes ``previous_champion`` first and ``champion`` last (the commit point), re-reads
both, and releases. Whoever next takes a lease whose holder died mid-commit finds its intent and
rolls it forward (``champion`` already moved) or back (it did not).

Reads use ``search_registered_models`` with a name filter and ``get_model_version_by_alias``: no
call here lists a model's versions, so the cost of a promotion does not grow with their number.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.exceptions import PromotionConflict

if TYPE_CHECKING:
    from mlflow import MlflowClient
from airflow_mlops_provider.promotion.candidates import read_state
from airflow_mlops_provider.promotion.common import CHAMPION, LEASE_TAG, PREVIOUS_CHAMPION

# --- the lease ---------------------------------------------------------------------------------


_WRITE_CONFLICT = re.compile(r"unique constraint|integrityerror|duplicate key", re.IGNORECASE)


def _is_write_conflict(err: Exception) -> bool:
    """Whether a tag write failed because a concurrent writer inserted the same row first.

    MLflow's SQL store creates a tag with a read-then-insert; two first writes of one tag race, and the
    loser gets the database's uniqueness error (SQLite ``UNIQUE constraint``, PostgreSQL ``duplicate
    key``) back as a ``RestException``. Its write did not land.
    """
    return _WRITE_CONFLICT.search(str(err)) is not None


@dataclass(frozen=True)
class LeaseSettings:
    """Timing of :class:`RegistryLease`.

    :param ttl_s: A lease unchanged this long (on the waiter's clock) is stale and may be broken; a
        holder gives up its commit when it has held the lease this long.
    :param max_write_s: An acquisition whose read-to-write-done time exceeds this does not count.
    :param settle_s: Wait between writing one's token and checking it; must exceed ``max_write_s``.
    :param acquire_timeout_s: Give up acquiring after this long.
    :param poll_s: Wait between reads while the lease is held by someone else.
    """

    ttl_s: float = 60.0
    max_write_s: float = 2.0
    settle_s: float = 2.5
    acquire_timeout_s: float = 300.0
    poll_s: float = 0.5

    def __post_init__(self) -> None:
        if self.settle_s <= self.max_write_s:
            raise ValueError(
                f"lease settle_s {self.settle_s} must exceed max_write_s {self.max_write_s} "
                f"(Fischer's protocol needs the wait to outlast any contender's write)"
            )
        if self.ttl_s <= self.settle_s:
            raise ValueError(f"lease ttl_s {self.ttl_s} must exceed settle_s {self.settle_s}")


@dataclass
class RegistryLease:
    """A per-model mutual-exclusion lease in a registered-model tag (see the module docstring)."""

    client: MlflowClient
    name: str
    owner: str
    settings: LeaseSettings = field(default_factory=LeaseSettings)
    log: Any = None
    token: str | None = None
    acquired_at: float = 0.0
    #: The lease this one replaced when it was stale (holds a dead holder's intent, if any).
    broken: dict[str, Any] | None = None

    def _write(self, token: str, intent: dict[str, Any] | None = None) -> None:
        now = time.time()
        value = {
            "token": token,
            "owner": self.owner,
            "written_at": now,
            "expires_at": now + self.settings.ttl_s,
        }
        if intent is not None:
            value["intent"] = intent
        self.client.set_registered_model_tag(self.name, LEASE_TAG, json.dumps(value))

    def acquire(self) -> RegistryLease:
        s = self.settings
        deadline = time.monotonic() + s.acquire_timeout_s
        seen_raw: str | None = None
        seen_since = 0.0
        while True:
            if time.monotonic() > deadline:
                holder = read_state(self.client, self.name).lease or {}
                raise PromotionConflict(
                    f"could not take the promotion lease on {self.name!r} within {s.acquire_timeout_s:g}s; "
                    f"held by {holder.get('owner', 'unknown')!r}"
                )
            started = time.monotonic()
            state = read_state(self.client, self.name)
            if state.raw_lease is not None:
                if state.raw_lease != seen_raw:
                    seen_raw, seen_since = state.raw_lease, started
                lease = state.lease or {}
                wall_stale = time.time() > float(lease.get("expires_at", 0)) + s.ttl_s
                if not wall_stale and started - seen_since < s.ttl_s:
                    time.sleep(s.poll_s * (0.5 + random.random()))
                    continue
                if self.log:
                    self.log.warning(
                        "Breaking a stale promotion lease on %s held by %r", self.name, lease.get("owner")
                    )
            token = uuid.uuid4().hex
            try:
                self._write(token)
            except Exception as err:
                if not _is_write_conflict(err):
                    raise
                # Two contenders created the tag at once and the store kept the other one's row.
                if self.log:
                    self.log.info("Lease write on %s lost a race; re-reading", self.name)
                time.sleep(s.poll_s * (0.5 + random.random()))
                continue
            if time.monotonic() - started > s.max_write_s:
                # Our write may land after another contender checked its own: we must not enter.
                # The token stays and goes stale; deleting it could free a lease someone holds.
                if self.log:
                    self.log.warning("Lease write on %s took over %ss; retrying", self.name, s.max_write_s)
                time.sleep(s.poll_s * (0.5 + random.random()))
                continue
            time.sleep(s.settle_s)
            again = read_state(self.client, self.name)
            if (again.lease or {}).get("token") == token:
                self.token, self.acquired_at = token, time.monotonic()
                self.broken = state.lease
                if self.log:
                    self.log.info("Took the promotion lease on %s", self.name)
                return self
            time.sleep(s.poll_s * (0.5 + random.random()))

    def check(self) -> None:
        """Raise :class:`PromotionConflict` unless this process still holds the lease."""
        if self.token is None:
            raise PromotionConflict(f"promotion lease on {self.name!r} was never taken")
        if time.monotonic() - self.acquired_at > self.settings.ttl_s - self.settings.settle_s:
            raise PromotionConflict(
                f"promotion lease on {self.name!r} held longer than its ttl {self.settings.ttl_s:g}s; "
                f"giving up rather than racing whoever breaks it"
            )
        current = read_state(self.client, self.name).lease or {}
        if current.get("token") != self.token:
            raise PromotionConflict(
                f"lost the promotion lease on {self.name!r} to {current.get('owner', 'unknown')!r}; "
                f"nothing further was written"
            )

    def record_intent(self, intent: dict[str, Any]) -> None:
        """Write the aliases before and after the change into the lease, ahead of changing them."""
        self.check()
        assert self.token is not None
        self._write(self.token, intent)

    def release(self) -> None:
        if self.token is None:
            return
        try:
            current = read_state(self.client, self.name).lease or {}
            if current.get("token") == self.token:
                self.client.delete_registered_model_tag(self.name, LEASE_TAG)
        finally:
            self.token = None

    def __enter__(self) -> RegistryLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        try:
            self.release()
        except Exception as err:
            # The lease goes stale after ttl_s; failing the task over the release would hide why.
            if self.log:
                self.log.warning("Could not release the promotion lease on %s: %s", self.name, err)


def _set_alias(client: MlflowClient, name: str, alias: str, version: str | None) -> None:
    if version is None:
        from mlflow.exceptions import MlflowException

        try:
            client.delete_registered_model_alias(name, alias)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
    else:
        client.set_registered_model_alias(name, alias, version)


def repair_interrupted(client: MlflowClient, name: str, lease: RegistryLease, log: Any = None) -> str | None:
    """Finish or undo an alias change whose holder died mid-commit, from the intent it left.

    :return: What was done, for the log and the decision record, or ``None``.
    """
    intent = (lease.broken or {}).get("intent")
    if not intent:
        return None
    state = read_state(client, name).aliases
    champ_before, champ_after = intent["champion"]
    prev_before, prev_after = intent["previous_champion"]
    current = state.get(CHAMPION)
    if current == champ_after and state.get(PREVIOUS_CHAMPION) != prev_after:
        lease.check()
        _set_alias(client, name, PREVIOUS_CHAMPION, prev_after)
        done = f"rolled forward an interrupted change: previous_champion -> {prev_after}"
    elif current == champ_before and state.get(PREVIOUS_CHAMPION) != prev_before:
        lease.check()
        _set_alias(client, name, PREVIOUS_CHAMPION, prev_before)
        done = f"rolled back an interrupted change: previous_champion -> {prev_before}"
    else:
        return None
    if log:
        log.warning("%s: %s", name, done)
    return done


def move_champion(
    client: MlflowClient,
    name: str,
    lease: RegistryLease,
    *,
    expected_champion: str | None,
    new_champion: str,
    new_previous: str | None,
) -> dict[str, str | None]:
    """Under a held lease: verify, set ``previous_champion`` then ``champion``, and re-read.

    :param expected_champion: The champion the caller's decision was based on; if the alias points
        elsewhere now, nothing is written and :class:`PromotionConflict` is raised.
    """
    state = read_state(client, name).aliases
    current, previous = state.get(CHAMPION), state.get(PREVIOUS_CHAMPION)
    if current == new_champion and previous == new_previous:
        return {"champion_version": new_champion, "previous_champion_version": new_previous}
    if current != expected_champion:
        raise PromotionConflict(
            f"champion of {name!r} moved since evaluation: was "
            f"{'v' + expected_champion if expected_champion else 'unset'}, now "
            f"{'v' + current if current else 'unset'}; not promoting v{new_champion} (evaluate again)"
        )
    lease.record_intent({"champion": [current, new_champion], "previous_champion": [previous, new_previous]})
    if previous != new_previous:
        lease.check()
        _set_alias(client, name, PREVIOUS_CHAMPION, new_previous)
    lease.check()
    client.set_registered_model_alias(name, CHAMPION, new_champion)
    after = read_state(client, name).aliases
    if after.get(CHAMPION) != new_champion or after.get(PREVIOUS_CHAMPION) != new_previous:
        raise PromotionConflict(
            f"aliases of {name!r} changed under the lease (a writer that does not take it?): expected "
            f"champion v{new_champion}, previous_champion {new_previous}; found {after}"
        )
    return {"champion_version": new_champion, "previous_champion_version": new_previous}
