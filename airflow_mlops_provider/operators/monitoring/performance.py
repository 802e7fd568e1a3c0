"""Live performance of a served model version: delayed outcomes joined to its captured predictions, the decay decision, rollback advice."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.providers.standard.operators.branch import BranchMixIn
from airflow.sdk import Asset, AssetAlias

from airflow_mlops_provider.options import one_of

if TYPE_CHECKING:
    from airflow.sdk import Context
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from airflow_mlops_provider.monitoring.decay import DecayPolicy
from airflow_mlops_provider.operators.monitoring.window import WindowOperator, uri_exists

#: The experiment holding one monitoring run per model version, one step per window.
MONITORING_EXPERIMENT = "mlops-monitoring"
TAG_MONITORED_MODEL = "mlops.monitoring.model"
TAG_MONITORED_VERSION = "mlops.monitoring.version"
OUTCOMES = ("ok", "degraded", "insufficient_data")
ROLLBACK_POLICIES = ("never", "if_worse_than_replaced")


class ModelPerformanceOperator(WindowOperator, BranchMixIn):
    """Join delayed outcomes to a window's captured predictions; measure live performance; decide.

    Reads the version's captured predictions of ``[window_start, window_end)`` and the labels at
    ``labels_uri`` (``request_id``, the outcome, when it was labelled), joins them with Arrow and
    computes ``policy.metric`` (and ``metrics``) with :func:`~airflow_mlops_provider.gates.
    compute_metrics`, the gates' own code, overall and per slice, with a bootstrap interval. Coverage,
    duplicate, late, unknown and out-of-window labels are counted, never errors. The decision follows
    :class:`~airflow_mlops_provider.monitoring.decay.DecayPolicy` against the version's offline
    evaluation from its promotion: ``ok``, ``degraded`` or, with fewer labelled rows than the policy
    asks for (or no offline figure to compare with), ``insufficient_data``, which decides nothing.

    Every window is logged to MLflow: experiment ``mlops-monitoring``, one run per model version, one
    step per window (the window end), with the report as an artifact. On ``degraded``:

    - ``decay_asset`` gets an event whose ``extra`` carries the figures (schedule retraining on it);
    - with ``rollback="if_worse_than_replaced"``, when the version replaced a champion and does worse
      live than that one did in its own last window with enough labels, the result recommends a
      rollback and the ``rollback`` branch is followed (to a ``ModelRollbackOperator``, which moves
      the alias and leaves the audit trail).

    Returns ``{status, reasons, model_name, version, window, counts, live, offline, rollback,
    monitoring_run_id}``.

    :param labels_uri: Labels: a Parquet or CSV file, a directory of them, or a glob. (templated)
    :param policy: A ``DecayPolicy``, a mapping or YAML text of its fields. (templated)
    :param label_column: The outcome column.
    :param label_timestamp_column: When each outcome was recorded.
    :param value_column: Optional business value per outcome, summed per window.
    :param metrics: More metrics to report beside the policy's.
    :param slices: ``[{name, where}]`` segments to report (the gates' filter expressions).
    :param model_kind: ``classification`` or ``regression``; default the training run's ``mlops.task_type``.
    :param max_label_delay: Labels later than this after the prediction are counted as late.
    :param on_missing_labels: ``fail``, or ``insufficient_data`` when nothing is at ``labels_uri`` yet
        (no outcome has arrived: no decision, and the window is still logged).
    :param confidence: Level of the bootstrap intervals.
    :param bootstrap: Bootstrap resamples.
    :param decay_asset: Asset to emit an event for on ``degraded``.
    :param rollback: ``never`` or ``if_worse_than_replaced``.
    :param branch: ``{ok|degraded|insufficient_data|rollback: task_id or [task_ids]}``; ``rollback``
        is followed, besides ``degraded``'s, when a rollback is recommended.
    The window and model parameters are :class:`CaptureWindowOperator`'s.
    """

    template_fields: Sequence[str] = (*WindowOperator.template_fields, "labels_uri", "policy")
    template_fields_renderers = {"policy": "yaml"}

    def __init__(
        self,
        *,
        labels_uri: str,
        policy: DecayPolicy | Mapping[str, Any] | str,
        label_column: str = "label",
        label_timestamp_column: str = "labeled_at",
        value_column: str | None = None,
        metrics: Sequence[str] = (),
        slices: Sequence[Mapping[str, Any]] = (),
        model_kind: str | None = None,
        max_label_delay: timedelta | None = None,
        on_missing_labels: Literal["fail", "insufficient_data"] = "fail",
        confidence: float = 0.95,
        bootstrap: int = 200,
        decay_asset: Asset | None = None,
        rollback: Literal["never", "if_worse_than_replaced"] = "never",
        branch: Mapping[str, str | Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        if decay_asset is not None:
            kwargs["outlets"] = [*kwargs.get("outlets", []), AssetAlias(self.alias_name(decay_asset))]
        super().__init__(**kwargs)
        self.labels_uri = labels_uri
        self.policy = policy
        self.label_column = label_column
        self.label_timestamp_column = label_timestamp_column
        self.value_column = value_column
        self.metrics = metrics
        self.slices = slices
        self.model_kind = model_kind
        self.max_label_delay = max_label_delay
        self.on_missing_labels = one_of(on_missing_labels, ("fail", "insufficient_data"), "on_missing_labels")
        self.confidence = confidence
        self.bootstrap = bootstrap
        self.decay_asset = decay_asset
        self.rollback = one_of(rollback, ROLLBACK_POLICIES, "rollback")
        self.branch = branch
        if branch is not None:
            for outcome in branch:
                one_of(outcome, (*OUTCOMES, "rollback"), "branch key")

    @staticmethod
    def alias_name(asset: Asset) -> str:
        return f"mlops-performance:{asset.name}"

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops_provider import promotion as p
        from airflow_mlops_provider.exceptions import MonitoringError
        from airflow_mlops_provider.gates import check_model_kind
        from airflow_mlops_provider.monitoring.captures import captured_request_ids, read_captures
        from airflow_mlops_provider.monitoring.decay import DecayPolicy, decide
        from airflow_mlops_provider.monitoring.outcomes import empty_labels, join_outcomes, read_labels
        from airflow_mlops_provider.monitoring.performance import live_metrics

        policy = DecayPolicy.coerce(self.policy)
        client = self.mlflow_hook.get_client()
        mv = self.served_version(client)
        with p.translate_unreachable(self.mlflow_hook.tracking_uri, f"reading {self.model_name}"):
            run_tags = client.get_run(mv.run_id).data.tags if mv.run_id else {}
        kind = self.model_kind or p.model_kind_from_tags(run_tags)
        if kind is None:
            raise MonitoringError(
                f"{mv.name} v{mv.version}: its training run does not say whether it is a classification or "
                f"a regression model (tag mlops.task_type); pass model_kind"
            )
        kind = check_model_kind(kind)
        policy.check_kind(kind, f"{mv.name} v{mv.version}")
        uri = self.resolved_capture_uri(mv)
        start, end = self.window(context)

        captures = read_captures(uri, mv.name, version=mv.version, start=start, end=end)
        if self.on_missing_labels == "insufficient_data" and not uri_exists(self.labels_uri):
            self.log.info("Nothing at %s yet: no outcome has arrived", self.labels_uri)
            labels = empty_labels(value_column=self.value_column)
        else:
            labels = read_labels(
                self.labels_uri,
                label_column=self.label_column,
                timestamp_column=self.label_timestamp_column,
                value_column=self.value_column,
            )
        joined, counts = join_outcomes(
            captures,
            labels,
            all_request_ids=captured_request_ids(uri, mv.name),
            max_label_delay=self.max_label_delay,
        )
        names = list(dict.fromkeys([*policy.metrics, *self.metrics]))
        live = live_metrics(
            joined,
            kind=kind,
            metrics=names,
            slices=self.slices,
            confidence=self.confidence,
            bootstrap=self.bootstrap,
            value_column="value" if self.value_column else None,
        )
        # The promotion's evaluation of this version: {rows, overall: {metric: value}, slices}.
        evaluation = _json_tag(mv.tags.get(p.TAG_METRICS))
        overall = evaluation.get("overall")
        offline: dict[str, Any] = overall if isinstance(overall, dict) else {}
        decision = decide(live, offline, policy)
        self.log.info(
            "%s v%s in [%s, %s): %s; counts %s",
            mv.name,
            mv.version,
            start.isoformat(),
            end.isoformat(),
            decision["status"],
            counts,
        )
        for reason in decision["reasons"]:
            self.log.info("  %s", reason)

        run_id = self._log_window(client, mv, start, end, counts, live, decision)
        rollback = self._rollback_advice(client, mv, live, decision, policy)
        result = {
            "status": decision["status"],
            "reasons": decision["reasons"],
            "metric": policy.metric,
            "model_name": mv.name,
            "version": str(mv.version),
            "kind": kind,
            "window": {"start": start.isoformat(), "end": end.isoformat()},
            "capture_uri": uri,
            "labels_uri": self.labels_uri,
            "counts": counts,
            "live": live,
            "offline": offline,
            "rollback": rollback,
            "monitoring_run_id": run_id,
        }
        if decision["status"] == "degraded" and self.decay_asset is not None:
            extra = {
                "model_name": mv.name,
                "version": str(mv.version),
                "metric": policy.metric,
                "live": live["metrics"].get(policy.metric),
                "offline": offline.get(policy.metric),
                "rows": live.get("rows"),
                "window_end": end.isoformat(),
                "rollback_recommended": rollback["recommended"],
            }
            context["outlet_events"][AssetAlias(self.alias_name(self.decay_asset))].add(
                self.decay_asset, extra=json.loads(json.dumps(extra, default=str))
            )
            self.log.info("Emitted an event for asset %s", self.decay_asset.name)
        from airflow_mlops_provider.decisions import monitoring_step

        self.record_decision_step(context, mv.name, "monitoring", monitoring_step(result))
        if self.branch is not None:
            from airflow_mlops_provider.operators._branching import follow_branches

            keys = [decision["status"], "rollback"] if rollback["recommended"] else [decision["status"]]
            follow_branches(self, context, self.branch, keys, result)
        return result

    # -- MLflow ----------------------------------------------------------------------------------

    @staticmethod
    def monitoring_run(client: MlflowClient, name: str, version: str, create: bool = True) -> str | None:
        """Return the id of the monitoring run of ``name`` v``version`` (created when asked)."""
        experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
        if experiment is None:
            if not create:
                return None
            experiment_id = client.create_experiment(MONITORING_EXPERIMENT)
        else:
            experiment_id = experiment.experiment_id
        found = client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`{TAG_MONITORED_MODEL}` = '{name}' and tags.`{TAG_MONITORED_VERSION}` = '{version}'"
            ),
            max_results=1,
        )
        if found:
            return str(found[0].info.run_id)
        if not create:
            return None
        run = client.create_run(
            experiment_id,
            tags={TAG_MONITORED_MODEL: name, TAG_MONITORED_VERSION: version},
            run_name=f"{name}-v{version}-live",
        )
        return str(run.info.run_id)

    def _log_window(
        self,
        client: MlflowClient,
        mv: ModelVersion,
        start: datetime,
        end: datetime,
        counts: Mapping[str, Any],
        live: Mapping[str, Any],
        decision: Mapping[str, Any],
    ) -> str | None:
        from mlflow.entities import Metric

        from airflow_mlops_provider import promotion as p

        step, stamp = int(end.timestamp()), int(end.timestamp() * 1000)
        values: dict[str, float] = {
            f"labels.{k}": float(v) for k, v in counts.items() if isinstance(v, int | float) and v is not None
        }
        for metric, figure in live["metrics"].items():
            for key in ("value", "ci_low", "ci_high", "rows"):
                if isinstance(figure, Mapping) and figure.get(key) is not None:
                    values[f"live.{metric}" + ("" if key == "value" else f".{key}")] = float(figure[key])
        if live.get("value_sum") is not None:
            values["live.value_sum"] = float(live["value_sum"])
        report = {"window": {"start": start.isoformat(), "end": end.isoformat()}, "counts": counts}
        report.update(live=live, decision=decision)
        with p.translate_unreachable(self.mlflow_hook.tracking_uri, "logging the monitoring window"):
            run_id = self.monitoring_run(client, mv.name, str(mv.version))
            assert run_id is not None
            client.log_batch(run_id, metrics=[Metric(k, v, stamp, step) for k, v in values.items()])
            client.set_tag(run_id, "mlops.monitoring.last_status", decision["status"])
            client.log_text(
                run_id, json.dumps(report, indent=2, default=str), f"windows/{end:%Y%m%dT%H%M%S}.json"
            )
        return run_id

    def _rollback_advice(
        self,
        client: MlflowClient,
        mv: ModelVersion,
        live: Mapping[str, Any],
        decision: Mapping[str, Any],
        policy: DecayPolicy,
    ) -> dict[str, Any]:
        """Whether to roll back: degraded, and worse live than the champion this version replaced."""
        from airflow_mlops_provider import promotion as p
        from airflow_mlops_provider.monitoring.decay import worse_than

        advice: dict[str, Any] = {"policy": self.rollback, "recommended": False, "reason": None}
        replaced = mv.tags.get(p.TAG_PREVIOUS_CHAMPION)
        advice["replaced_version"] = replaced if replaced not in (None, "", "none") else None
        if self.rollback == "never" or decision["status"] != "degraded" or advice["replaced_version"] is None:
            return advice
        before = self.last_live(client, mv.name, str(replaced), policy.metric, policy.min_rows)
        advice["replaced_live"] = before
        now = live["metrics"].get(policy.metric) or {}
        if before is None:
            advice["reason"] = (
                f"v{replaced} has no window with {policy.min_rows}+ labelled rows to compare with"
            )
            return advice
        if worse_than(live, {"metrics": {policy.metric: before}}, policy.metric, policy.min_rows):
            advice["recommended"] = True
            advice["reason"] = (
                f"live {policy.metric} of v{mv.version} is {now['value']:.4f} on {now['rows']} rows, worse "
                f"than v{replaced}'s {before['value']:.4f} on {before['rows']} rows when it was champion "
                f"(rollback policy {self.rollback})"
            )
        else:
            advice["reason"] = f"v{mv.version} does no worse live than v{replaced} did: no rollback"
        return advice

    def last_live(
        self, client: MlflowClient, name: str, version: str, metric: str, min_rows: int
    ) -> dict[str, Any] | None:
        """The version's latest logged window with at least ``min_rows`` labelled rows, or ``None``."""
        run_id = self.monitoring_run(client, name, version, create=False)
        if run_id is None:
            return None
        rows = {m.step: m.value for m in client.get_metric_history(run_id, f"live.{metric}.rows")}
        values = sorted(
            (m.step, m.value)
            for m in client.get_metric_history(run_id, f"live.{metric}")
            if rows.get(m.step, 0) >= min_rows
        )
        if not values:
            return None
        step, value = values[-1]
        return {"value": value, "rows": int(rows[step]), "window_end": step}


def _json_tag(value: str | None) -> dict[str, Any]:
    try:
        parsed = json.loads(value) if value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
