"""Readable Markdown pages for validation and drift results (the JSON is the machine-readable twin)."""

from __future__ import annotations

from airflow_mlops_provider.data.contract import ValidationResult
from airflow_mlops_provider.data.drift import DriftReport

_ICON = {True: "pass", False: "FAIL"}


def validation_markdown(result: ValidationResult, *, dataset: str, fingerprint: str, rows: int) -> str:
    lines = [
        f"# Data validation: {result.status.upper()}",
        "",
        f"- contract: `{result.contract}`",
        f"- dataset: `{dataset}` ({rows} rows)",
        f"- data fingerprint: `{fingerprint}`",
        f"- checks: {len(result.results)}, failed: {len(result.failures)}, warnings: {len(result.warnings)}",
        "",
        "| result | severity | column | check | observed | allowed |",
        "|---|---|---|---|---|---|",
    ]
    ordered = sorted(result.results, key=lambda r: (r.passed, r.severity != "fail", r.column or ""))
    for r in ordered:
        state = _ICON[r.passed] if r.passed or r.severity == "fail" else "warn"
        lines.append(
            f"| {state} | {r.severity} | {r.column or '(table)'} | {r.check} | {_cell(r.observed)} | {_cell(r.allowed)} |"
        )
    problems = result.failures + result.warnings
    if problems:
        lines += ["", "## Findings", ""] + [f"- **{r.severity}**: {r.message}" for r in problems]
    return "\n".join(lines) + "\n"


def drift_markdown(report: DriftReport, *, target: str, reference: str, plot: str | None = None) -> str:
    lines = [
        f"# Drift: {report.outcome}",
        "",
        f"- target: `{target}`",
        f"- reference: `{reference}`",
        f"- drifted columns: {report.drifted or 'none'} (share {report.drift_share:.0%})",
    ]
    if report.missing_columns:
        lines.append(f"- columns missing from the target: {report.missing_columns}")
    if report.new_columns:
        lines.append(f"- columns new in the target: {report.new_columns}")
    lines += ["", "| column | outcome | test | statistic | p-value | effect |", "|---|---|---|---|---|---|"]
    for d in sorted(report.columns.values(), key=lambda d: d.effect, reverse=True):
        lines.append(
            f"| {d.column} | {d.outcome} | {d.algorithm} | {d.statistic:.4g} | {d.pvalue:.3g} | {d.effect:.3f} |"
        )
    if plot:
        lines += ["", f"![distributions]({plot})"]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    text = str(value)
    return (text[:60] + "…") if len(text) > 61 else text.replace("|", "\\|")
