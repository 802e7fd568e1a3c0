"""Tell people when a data gate fails, drift is found or a model decays: through any Airflow notifier
(Slack, Teams, PagerDuty…), by email when SMTP is set up, and in the log when nothing else reached anyone."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context


class MlopsAlertNotifier(BaseNotifier):
    """Send an alert through every channel it is given, and never lose it.

    The channels: each notifier in ``notifiers`` (any Airflow notifier, such as the Slack provider's
    ``SlackNotifier``; each renders its own templates), and email through the SMTP provider when
    ``to`` is given and the SMTP connection exists. A channel that fails is logged and the others
    still run. When no channel delivered the alert, it is written to the task log as a warning.

    Use it as a callback (``on_failure_callback=MlopsAlertNotifier(...)``) or on a task that runs
    only on the interesting branch (``on_success_callback``).

    :param subject: Subject line. (templated)
    :param message: Body. (templated)
    :param to: Email recipients; none means no email.
    :param smtp_conn_id: The SMTP connection.
    :param notifiers: Other notifiers to send the alert through.
    """

    template_fields: Sequence[str] = ("subject", "message")

    def __init__(
        self,
        *,
        subject: str,
        message: str,
        to: str | Iterable[str] | None = None,
        smtp_conn_id: str = "smtp_default",
        notifiers: Sequence[BaseNotifier] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subject = subject
        self.message = message
        self.to = to
        self.smtp_conn_id = smtp_conn_id
        self.notifiers = notifiers

    def _smtp_configured(self) -> bool:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            BaseHook.get_connection(self.smtp_conn_id)
        except AirflowNotFoundException:
            return False
        return True

    def _channels(self) -> list[tuple[str, BaseNotifier]]:
        channels = [(type(n).__name__, n) for n in self.notifiers]
        if self.to and self._smtp_configured():
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            email = SmtpNotifier(
                to=self.to,
                subject=self.subject,
                html_content=f"<pre>{self.message}</pre>",
                smtp_conn_id=self.smtp_conn_id,
            )
            channels.append((f"email to {self.to}", email))
        return channels

    def notify(self, context: Context) -> None:
        delivered = 0
        for name, channel in self._channels():
            try:
                channel(context)
            except Exception as err:  # one broken channel must not silence the others
                self.log.error(
                    "Alert %r could not be sent by %s: %s: %s", self.subject, name, type(err).__name__, err
                )
                continue
            delivered += 1
            self.log.info("Alert %r sent by %s", self.subject, name)
        if not delivered:
            self.log.warning("ALERT: %s\n%s", self.subject, self.message)
