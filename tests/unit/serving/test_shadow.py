"""The shadow scorer and canary routing, in process: bounded, never raising, stable by key."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops_provider.serving.capture import CaptureConfig, CaptureConfigError, CaptureWriter
from airflow_mlops_provider.serving.shadow import (
    ENV,
    ShadowConfig,
    ShadowScorer,
    canary_fraction,
    canary_mask,
    check_compatible,
)

COLUMNS = [{"name": "tenure", "type": "long"}, {"name": "customer", "type": "string"}]


def writer(root: Path) -> CaptureWriter:
    import pandas as pd

    return CaptureWriter(
        CaptureConfig(uri=str(root), flush_interval_s=600),
        {"mlflow_model_name": "churn", "mlflow_model_version": "2"},
        COLUMNS,
        lambda rows: pd.DataFrame.from_records(rows, columns=["tenure", "customer"]),
    )


def rows(n: int) -> list[dict[str, Any]]:
    return [{"tenure": i, "customer": f"c{i}"} for i in range(n)]


def test_shadow_scores_are_captured_unserved_with_their_requests_time(tmp_path: Path) -> None:
    import pyarrow.dataset as ds

    out = writer(tmp_path)
    scorer = ShadowScorer(lambda batch: [r["tenure"] % 2 for r in batch], out, max_queue_rows=100)
    scorer.submit(["a", "b", "c"], rows(3), answered_at=1_700_000_000.0)
    scorer.close()
    out.close()
    table = ds.dataset(str(tmp_path), format="parquet", partitioning="hive").to_table().to_pandas()
    assert table["request_id"].tolist() == ["a", "b", "c"]
    assert table["prediction"].tolist() == [0, 1, 0]
    assert not table["served"].any()
    assert {t.timestamp() for t in table["captured_at"]} == {1_700_000_000.0}
    assert scorer.scored == 3


def test_a_raising_or_slow_shadow_never_blocks_submit_and_every_row_is_accounted_for(tmp_path: Path) -> None:
    release = threading.Event()
    calls = []

    def predict(batch: list[dict[str, Any]]) -> list[int]:
        calls.append(len(batch))
        if batch[0]["tenure"] == 0:
            release.wait(10)  # slow: the first batch holds the thread
        if batch[0]["tenure"] == 99:
            raise RuntimeError("broken")
        return [1] * len(batch)

    out = writer(tmp_path)
    scorer = ShadowScorer(predict, out, max_queue_rows=10)
    started = time.perf_counter()
    for i in range(20):  # 4 rows each; the thread holds the first, the queue takes one more
        scorer.submit(
            [f"r{i}-{k}" for k in range(4)], [{"tenure": 4 * i + k, "customer": "c"} for k in range(4)], 0.0
        )
    assert time.perf_counter() - started < 0.5
    release.set()
    scorer.submit(["bad"], [{"tenure": 99, "customer": "c"}], 0.0)
    scorer.close()
    out.close()
    assert scorer.dropped["queue_full"] == 80 - 8
    assert scorer.scored == 8
    assert scorer.dropped["error"] == 1
    scorer.submit(["late"], rows(1), 0.0)
    assert scorer.dropped["shutting_down"] == 1


def test_settings_come_from_the_bento_and_each_environment_variable_overrides_one() -> None:
    built = ShadowConfig.from_mapping({"canary_share": 0.1, "canary_key": "customer"})
    served = built.with_env({ENV["enabled"]: "false", ENV["max_queue_rows"]: "50", ENV["canary_share"]: ""})
    assert (served.enabled, served.max_queue_rows, served.canary_share, served.canary_key) == (
        False,
        50,
        0.1,
        "customer",
    )
    with pytest.raises(CaptureConfigError, match="MLOPS_CANARY_SHARE='lots' is not a valid canary_share"):
        built.with_env({ENV["canary_share"]: "lots"})
    with pytest.raises(CaptureConfigError, match=r"canary_share=1\.5"):
        ShadowConfig(canary_share=1.5)
    with pytest.raises(CaptureConfigError, match="unknown shadow setting"):
        ShadowConfig.from_mapping({"share": 0.1})
    with pytest.raises(CaptureConfigError, match="canary_key 'region' is neither"):
        ShadowConfig(canary_share=0.1, canary_key="region").check_columns(["tenure", "customer"])


def test_the_canary_is_a_stable_share_of_keys() -> None:
    config = ShadowConfig(canary_share=0.2, canary_key="customer")
    batch = [{"customer": f"customer-{i}"} for i in range(5000)]
    mask = canary_mask(config, [f"req-{i}" for i in range(5000)], batch)
    assert 0.18 < sum(mask) / 5000 < 0.22
    # The same customer is in the canary in every request, whatever its request id.
    again = canary_mask(config, [f"other-{i}" for i in range(5000)], batch)
    assert mask == again
    assert mask == [canary_fraction(r["customer"]) < 0.2 for r in batch]
    assert canary_mask(ShadowConfig(), ["a"], [{}]) == [False]


def test_a_shadow_must_take_the_champions_requests() -> None:
    check_compatible(COLUMNS, [{"name": "tenure", "type": "long"}])
    with pytest.raises(CaptureConfigError, match=r"region \(string\): not in the champion's requests"):
        check_compatible(COLUMNS, [{"name": "region", "type": "string"}])
    with pytest.raises(CaptureConfigError, match=r"tenure \(double\): the champion's is long"):
        check_compatible(COLUMNS, [{"name": "tenure", "type": "double"}])
    # An optional column the champion's requests lack reaches the shadow as null: allowed.
    check_compatible(COLUMNS, [{"name": "region", "type": "string", "required": False}])
