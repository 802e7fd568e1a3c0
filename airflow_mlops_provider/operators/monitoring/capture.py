"""Export the inputs a served model version was sent in a window, for the data gates to check like any batch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context

from airflow_mlops_provider.operators.monitoring.window import WindowOperator


class CaptureWindowOperator(WindowOperator):
    """Write the inputs a served model version was sent in a window to one Parquet file.

    Reads the Bento's inference capture (docs/monitoring.md) of the version in ``[window_start,
    window_end)`` and keeps the model's input columns as they were sent: dropped ones are absent,
    hashed ones left out (a digest is not the data the model was trained on). Fewer than
    ``min_rows`` captured rows skips the task: no traffic, nothing to check.

    Returns ``{window_uri, rows, columns, start, end, model_name, version, capture_uri}``.

    :param model_name: Registered model. (templated)
    :param alias: Alias of the served version (default ``champion``). (templated)
    :param version: Or a version number. (templated)
    :param capture_uri: Capture root; default where the version's Bento captures. (templated)
    :param window_start: Aware ISO time; default ``window_end - lookback``. (templated)
    :param window_end: Aware ISO time; default the run's data interval end, or now. (templated)
    :param lookback: Window length when ``window_start`` is not given.
    :param output_uri: Parquet file to write; default under ``$MLOPS_HOME/monitoring``. (templated)
    :param min_rows: Fewest captured rows worth checking.
    :param mlflow_conn_id: The ``mlflow`` connection.
    """

    template_fields: Sequence[str] = (*WindowOperator.template_fields, "output_uri")

    def __init__(self, *, output_uri: str | None = None, min_rows: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_uri = output_uri
        self.min_rows = min_rows

    def execute(self, context: Context) -> dict[str, Any]:
        import pyarrow.parquet as pq
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops_provider.hooks.mlflow import mlops_home
        from airflow_mlops_provider.monitoring.captures import input_columns, read_captures

        client = self.mlflow_hook.get_client()
        mv = self.served_version(client)
        uri = self.resolved_capture_uri(mv)
        start, end = self.window(context)
        table = read_captures(uri, mv.name, version=mv.version, start=start, end=end)
        if table.num_rows < self.min_rows:
            raise AirflowSkipException(
                f"{table.num_rows} predictions of {mv.name} v{mv.version} captured in {uri} between "
                f"{start.isoformat()} and {end.isoformat()} (at least {self.min_rows} needed): nothing to check"
            )
        columns = input_columns(table)
        stamp = f"{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}"
        target = Path(
            self.output_uri
            or mlops_home() / "monitoring" / mv.name / f"v{mv.version}" / f"window-{stamp}.parquet"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        pq.write_table(table.select(columns), partial)
        os.replace(partial, target)
        self.log.info(
            "%d predictions of %s v%s in [%s, %s) -> %s (columns %s)",
            table.num_rows,
            mv.name,
            mv.version,
            start.isoformat(),
            end.isoformat(),
            target,
            columns,
        )
        return {
            "window_uri": str(target),
            "rows": table.num_rows,
            "columns": columns,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "model_name": mv.name,
            "version": str(mv.version),
            "capture_uri": uri,
        }
