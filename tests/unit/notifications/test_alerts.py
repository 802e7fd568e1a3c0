"""MlopsAlertNotifier: every channel is tried, a broken one silences no other, nothing is lost."""

from __future__ import annotations

import pytest
from airflow.sdk import BaseNotifier

from airflow_mlops_provider.notifications.alerts import MlopsAlertNotifier


class Recording(BaseNotifier):
    """A notifier like any provider's: its own templated text, rendered before it sends."""

    template_fields = ("text",)

    def __init__(self, text: str, fail: bool = False) -> None:
        super().__init__()
        self.text = text
        self.fail = fail
        self.sent: list[str] = []

    def notify(self, context):
        if self.fail:
            raise ConnectionError("hooks.slack.com unreachable")
        self.sent.append(self.text)


CONTEXT = {"params": {"model_name": "churn"}}


def _log(capsys) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_every_notifier_gets_the_alert_rendered_and_a_broken_one_stops_no_other(capsys):
    broken, working = (
        Recording("{{ params.model_name }} drifted", fail=True),
        Recording("{{ params.model_name }} drifted"),
    )
    alert = MlopsAlertNotifier(
        subject="[mlops] {{ params.model_name }}", message="m", notifiers=[broken, working]
    )
    alert(CONTEXT)
    log = _log(capsys)
    assert working.sent == ["churn drifted"]
    assert "could not be sent by Recording: ConnectionError: hooks.slack.com unreachable" in log
    assert "Alert '[mlops] churn' sent by Recording" in log
    assert "ALERT:" not in log  # one channel delivered it


@pytest.mark.parametrize(
    "fail", [pytest.param(True, id="every-channel-failed"), pytest.param(None, id="no-channel")]
)
def test_an_alert_no_channel_delivered_is_written_to_the_log(capsys, fail):
    notifiers = [Recording("x", fail=True)] if fail else []
    alert = MlopsAlertNotifier(
        subject="[mlops] {{ params.model_name }} decayed", message="live ROC AUC 0.61", notifiers=notifiers
    )
    alert(CONTEXT)
    assert "ALERT: [mlops] churn decayed\nlive ROC AUC 0.61" in _log(capsys)


def test_email_is_a_channel_only_when_the_smtp_connection_exists(monkeypatch):
    alert = MlopsAlertNotifier(subject="s", message="m", to="ops@example.com", smtp_conn_id="smtp_missing")
    assert alert._channels() == []
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_HERE", "smtp://user:pw@localhost:2525")
    alert = MlopsAlertNotifier(subject="s", message="m", to="ops@example.com", smtp_conn_id="smtp_here")
    assert [name for name, _ in alert._channels()] == ["email to ops@example.com"]
