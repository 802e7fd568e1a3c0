"""Tell people when a data gate fails or drift is found: by email when SMTP is set up, else in the log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context


class MlopsAlertNotifier(BaseNotifier):
    """Send an alert by email through the SMTP provider when ``to`` is given and the SMTP
    connection exists; otherwise write it to the task log as a warning, so it is never lost.

    Use it as a callback (``on_failure_callback=MlopsAlertNotifier(...)``) or on a task that runs
    only on the interesting branch (``on_success_callback``).

    :param subject: Subject line. (templated)
    :param message: Body. (templated)
    :param to: Recipients; none means the log only.
    :param smtp_conn_id: The SMTP connection.
    """

    template_fields: Sequence[str] = ("subject", "message")

    def __init__(
        self,
        *,
        subject: str,
        message: str,
        to: str | Iterable[str] | None = None,
        smtp_conn_id: str = "smtp_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subject = subject
        self.message = message
        self.to = to
        self.smtp_conn_id = smtp_conn_id

    def _smtp_configured(self) -> bool:
        from airflow.exceptions import AirflowNotFoundException
        from airflow.sdk import BaseHook

        try:
            BaseHook.get_connection(self.smtp_conn_id)
        except AirflowNotFoundException:
            return False
        return True

    def notify(self, context: Context) -> None:
        if self.to and self._smtp_configured():
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            SmtpNotifier(
                to=self.to,
                subject=self.subject,
                html_content=f"<pre>{self.message}</pre>",
                smtp_conn_id=self.smtp_conn_id,
            ).notify(context)
            self.log.info("Alert %r emailed to %s", self.subject, self.to)
            return
        self.log.warning("ALERT: %s\n%s", self.subject, self.message)
