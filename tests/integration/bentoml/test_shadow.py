"""A Bento with the challenger in shadow, served for real: the champion answers, both are captured.

One ``bentoml serve`` of a Bento packaged with a shadow whose behaviour a file decides (answer, raise,
or sleep), and a canary share keyed by the request id, so that each phase changes only the file.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from airflow_mlops_provider import lineage
from airflow_mlops_provider.serving.capture import ENV as CAPTURE_ENV
from airflow_mlops_provider.serving.shadow import canary_fraction
from tests.integration.bentoml.conftest import Registered, make_context, serve_bento
from tests.integration.bentoml.test_capture import metric, post, read_capture, records  # noqa: F401

pytestmark = pytest.mark.timeout(900)

BEHAVIOUR_ENV = "SHADOW_BEHAVIOUR_FILE"
CANARY_SHARE = 0.25


def _behaving_model(pipeline: Any) -> Any:
    """A challenger that answers the opposite of ``pipeline``, raises or sleeps as a file says."""
    import mlflow.pyfunc

    class Behaving(mlflow.pyfunc.PythonModel):
        def __init__(self) -> None:
            self.pipeline = pipeline

        # A DataFrame hint: MLflow reads no signature from it (the model is logged with one), and
        # neither warns that a hint is missing nor that it cannot use it.
        def predict(
            self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
        ) -> Any:
            import os
            import time
            from pathlib import Path

            path = os.environ.get(BEHAVIOUR_ENV)
            how = Path(path).read_text().strip() if path and Path(path).exists() else "answer"
            if how == "raise":
                raise RuntimeError("the shadow is broken on purpose")
            if how.startswith("sleep:"):
                time.sleep(float(how.split(":", 1)[1]))
            return 1 - self.pipeline.predict(model_input)

    return Behaving()


@pytest.fixture(scope="module")
def challenger(registered: Registered, client: Any) -> str:
    """Register the behaving challenger as version 2 of the champion's model."""
    import mlflow
    from mlflow.models import infer_signature

    from mlops_demo.churn import FEATURES, fit_baseline_model, generate_week

    train = generate_week(rows=500, seed=5)
    pipeline = fit_baseline_model(train)
    with mlflow.start_run() as run:
        mlflow.set_tag(lineage.TAG_DATA_FINGERPRINT, "sha256:" + "cd" * 32)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=_behaving_model(pipeline),
            signature=infer_signature(train[FEATURES], pipeline.predict(train[FEATURES])),
            input_example=train[FEATURES].head(3),
            registered_model_name=registered.name,
            pip_requirements=["scikit-learn", "pandas"],
        )
    assert run.info.run_id
    version = str(info.registered_model_version)
    client.set_registered_model_alias(registered.name, "challenger", version)
    return version


@pytest.fixture(scope="module")
def shadow_bento(
    registered: Registered, challenger: str, client: Any, export_dir: Path, bentoml_home: Path
) -> dict[str, Any]:
    from airflow_mlops_provider.model_card import write_card
    from airflow_mlops_provider.operators.bentoml import BentoPackageOperator

    # The champion's card, as its promotion would have written it: the Bento serves it.
    decision = {
        "registered_model_name": registered.name,
        "version": registered.version,
        "decision": "promoted",
    }
    write_card(
        client, registered.name, registered.version, {**decision, "model_card": {"owner": "churn-team"}}
    )

    return BentoPackageOperator(
        task_id="package_shadow",
        model_name=registered.name,
        shadow_alias="challenger",
        shadow={"canary_share": CANARY_SHARE, "max_queue_rows": 16},
        eval_data_uri=str(registered.eval_csv),
        export_uri=str(export_dir),
        max_batch_size=16,
    ).execute(make_context())


def test_packaging_a_shadow_tags_the_challenger_and_leaves_the_champions_bento_tags(
    shadow_bento: dict[str, Any], registered: Registered, challenger: str, client: Any
) -> None:
    assert shadow_bento["bento_tag"].endswith(f":v{registered.version}-shadow-v{challenger}")
    assert shadow_bento["shadow"]["model_version"] == challenger
    assert shadow_bento["smoke_test"]["status"] == "passed"
    tags = client.get_model_version(registered.name, challenger).tags
    assert tags[lineage.TAG_SHADOW_BENTO_TAG] == shadow_bento["bento_tag"]
    assert tags[lineage.TAG_SHADOW_CHAMPION_VERSION] == registered.version
    assert tags[lineage.TAG_SHADOW_SINCE]
    champion_tags = client.get_model_version(registered.name, registered.version).tags
    assert champion_tags.get(lineage.TAG_BENTO_TAG) != shadow_bento["bento_tag"]


def test_a_shadow_of_the_champion_itself_or_with_other_columns_is_refused(
    registered: Registered, export_dir: Path, bentoml_home: Path
) -> None:
    from airflow_mlops_provider.exceptions import PackagingError
    from airflow_mlops_provider.operators.bentoml import BentoPackageOperator

    with pytest.raises(PackagingError, match="the version it shadows"):
        BentoPackageOperator(
            task_id="p",
            model_name=registered.name,
            shadow_version=registered.version,
            export_uri=str(export_dir),
        ).execute(make_context())
    with pytest.raises(PackagingError, match="a full batch could never wait for the shadow"):
        BentoPackageOperator(
            task_id="p",
            model_name=registered.name,
            shadow_alias="challenger",
            shadow={"max_queue_rows": 8},
            max_batch_size=16,
            export_uri=str(export_dir),
        ).execute(make_context())
    with pytest.raises(PackagingError, match="canary_key 'customer' is neither"):
        BentoPackageOperator(
            task_id="p",
            model_name=registered.name,
            shadow_alias="challenger",
            shadow={"canary_share": 0.1, "canary_key": "customer"},
            export_uri=str(export_dir),
        ).execute(make_context())


def test_the_champion_answers_both_are_captured_and_a_failing_or_slow_shadow_changes_nothing(
    shadow_bento: dict[str, Any],
    registered: Registered,
    challenger: str,
    records: list[dict[str, Any]],  # noqa: F811
    tmp_path: Path,
) -> None:
    import mlflow.pyfunc

    from airflow_mlops_provider.serving.schema import input_columns, to_frame, to_json

    behaviour = tmp_path / "behaviour"
    behaviour.write_text("answer")
    store = tmp_path / "capture"
    env = {
        **os.environ,
        CAPTURE_ENV["uri"]: str(store),
        CAPTURE_ENV["flush_interval_s"]: "600",
        BEHAVIOUR_ENV: str(behaviour),
    }
    champion = mlflow.pyfunc.load_model(f"models:/{registered.name}/{registered.version}")
    columns = input_columns({"signature": champion.metadata.signature.to_dict()})
    expected = to_json(champion.predict(to_frame(records, columns)))
    inverted = [1 - p for p in expected]

    def send(phase: str, n: int, canary: bool | None = None) -> list[tuple[str, int, Any, float]]:
        """Send ``n`` one-row requests (ids chosen to be canary or not, when asked); time each."""
        ids = []
        i = 0
        while len(ids) < n:
            rid = f"{phase}-{i}"
            i += 1
            if canary is None or (canary_fraction(rid) < CANARY_SHARE) == canary:
                ids.append(rid)

        def one(k: int) -> tuple[str, int, Any, float]:
            started = time.perf_counter()
            status, body, returned = post(url, [records[k % len(records)]], ids[k])
            assert returned == ids[k]
            return ids[k], status, body, time.perf_counter() - started

        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(one, range(n)))

    with serve_bento(shadow_bento["bento_tag"], env, tmp_path / "serve.log") as (url, proc):
        card = httpx.get(f"{url}/model_card/", timeout=30)
        answering = send("answer", 40)
        time.sleep(2)  # the shadow scores after the answers
        behaviour.write_text("raise")
        raising = send("raise", 12, canary=False) + send("raise-canary", 4, canary=True)
        time.sleep(2)
        behaviour.write_text("sleep:3")
        # A slow shadow: answers stay fast; what does not fit the 16-row queue is dropped.
        slow = send("slow", 24, canary=False)
        behaviour.write_text("answer")
        served_v1 = metric(url, "mlops_served_rows_total", model_version=registered.version)
        served_v2 = metric(url, "mlops_served_rows_total", model_version=challenger)
        failed = metric(url, "mlops_shadow_dropped_rows_total", model_version=challenger, reason="error")
        queue_full = metric(
            url, "mlops_shadow_dropped_rows_total", model_version=challenger, reason="queue_full"
        )
        fallbacks = metric(url, "mlops_canary_fallback_rows_total")
        proc.stop()

    # The champion's model card travels in the Bento.
    assert card.status_code == 200
    assert card.headers["content-type"].startswith("text/html")
    assert f"Model card: {registered.name} v{registered.version} (promoted)" in card.text
    assert "<td>churn-team</td>" in card.text

    every = answering + raising + slow
    assert all(status == 200 for _, status, _, _ in every)
    canary_ids = {rid for rid, *_ in every if canary_fraction(rid) < CANARY_SHARE}
    row_of = {rid: k for k, (rid, *_) in enumerate(answering)}
    for rid, _, body, _ in answering:
        k = row_of[rid] % len(records)
        assert body == [inverted[k] if rid in canary_ids else expected[k]], rid
    assert 0 < len(canary_ids & {rid for rid, *_ in answering}) < len(answering)
    # A raising challenger: the champion answers, its canary rows included (and the shadow, scoring
    # those rows after the champion answered them, raises again).
    for phase in (raising[:12], raising[12:], slow):
        for k, (_, _, body, _) in enumerate(phase):
            assert body == [expected[k % len(records)]]
    assert fallbacks == 4
    assert failed == 12 + 4
    # The slow shadow: no answer waited for its 3-second predictions; what did not fit the 16-row
    # queue was dropped.
    assert max(seconds for *_, seconds in slow) < 1.5
    assert queue_full >= 24 - 16
    canary_answered = len(canary_ids & {rid for rid, *_ in answering})
    assert served_v2 == canary_answered
    assert served_v1 == len(every) - canary_answered

    captured = read_capture(store)
    v1 = captured[captured["model_version"] == registered.version]
    v2 = captured[captured["model_version"] == challenger]
    # Every request answered is captured once for the version that answered it.
    assert sorted(v1[v1["served"]]["request_id"]) == sorted(
        rid for rid, *_ in every if rid not in canary_ids or rid.startswith("raise-canary")
    )
    assert sorted(v2[v2["served"]]["request_id"]) == sorted(rid for rid, *_ in answering if rid in canary_ids)
    # Both predictions under one request id, for every request of the answering phase.
    for rid, _, body, _ in answering:
        mine = captured[captured["request_id"] == rid]
        assert sorted(mine["model_version"]) == sorted([registered.version, challenger]), rid
        answered = mine[mine["served"]]["prediction"].tolist()
        shadowed = mine[~mine["served"]]["prediction"].tolist()
        assert answered == body
        assert shadowed == [1 - body[0]]
        assert mine["captured_at"].nunique() == 1  # the shadow's row is dated with its request
    # The shadow scored nothing it was not sent, and nothing of the raising phase.
    assert not set(v2["request_id"]) - {rid for rid, *_ in every}
    assert not {rid for rid, *_ in raising[:12]} & set(v2["request_id"])
