"""The vulnerability gate: a Bento's locked requirements audited with pip-audit before it is deployable.

:func:`locked_requirements` pins every requirement of the Bento to the version this environment
holds (the one its smoke test served with); :func:`audit` runs ``pip-audit`` on exactly those pins
(``--no-deps --disable-pip``: nothing is resolved or installed) against a vulnerability service
(PyPI's or OSV's); :func:`judge` applies a :class:`VulnerabilityPolicy` to its JSON report:

- an advisory on an allow-list entry (by id or alias, optionally for one package) passes until the
  entry's expiry date, and is refused from that day on;
- any other advisory above ``max_severity`` is refused. pip-audit's JSON carries no severity, so an
  advisory's severity is the report's ``severity`` field where one is given, else
  ``unknown_severity`` (default ``unknown``, which ranks above ``critical``: refused, fail closed);
- a dependency the service could not audit (``skip_reason``), or a service that cannot be reached,
  refuses the Bento unless ``on_unreachable="warn"``; either way the result names the service and
  the packages not audited.

Airflow-free; the scan runs pip-audit in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from airflow_mlops_provider.exceptions import GateConfigError

#: Severities in rising order; ``unknown`` is above every known one.
SEVERITIES = ("none", "low", "medium", "high", "critical", "unknown")
SERVICES = ("pypi", "osv")


@dataclass(frozen=True)
class AllowedAdvisory:
    """An advisory accepted until ``expires``, for a stated reason.

    :param id: The advisory's id or one of its aliases (``PYSEC-…``, ``GHSA-…``, ``CVE-…``).
    :param expires: The first day it is refused again.
    :param reason: Why it is accepted (recorded with every scan).
    :param package: Only for this package; any package when ``None``.
    """

    id: str
    expires: date
    reason: str
    package: str | None = None

    @classmethod
    def parse(cls, item: Any, where: str) -> AllowedAdvisory:
        if isinstance(item, AllowedAdvisory):
            return item
        if not isinstance(item, Mapping) or not {"id", "expires", "reason"} <= set(item):
            raise GateConfigError(f"{where}: {item!r}; expected {{id, expires: YYYY-MM-DD, reason}}")
        unknown = sorted(set(item) - {"id", "expires", "reason", "package"})
        if unknown:
            raise GateConfigError(
                f"{where}: unknown key(s) {unknown}; allowed: ['expires', 'id', 'package', 'reason']"
            )
        expires = item["expires"]
        try:
            expires = expires if isinstance(expires, date) else date.fromisoformat(str(expires))
        except ValueError:
            raise GateConfigError(
                f"{where}.expires: {item['expires']!r} is not a date (YYYY-MM-DD)"
            ) from None
        if not str(item["reason"]).strip():
            raise GateConfigError(f"{where}.reason: say why {item['id']} is accepted")
        package = item.get("package")
        return cls(str(item["id"]), expires, str(item["reason"]), _canonical(package) if package else None)


@dataclass(frozen=True)
class VulnerabilityPolicy:
    """What the vulnerability gate refuses.

    :param max_severity: The highest severity tolerated (``none``: every advisory refuses).
    :param unknown_severity: The severity of an advisory the report gives none for.
    :param allow: Advisories accepted until their expiry.
    :param on_unreachable: ``fail`` (default: refuse, fail closed) or ``warn`` when the service cannot
        be reached or cannot audit a dependency.
    :param service: ``pypi`` or ``osv``.
    :param timeout_s: How long the scan may take.
    """

    max_severity: str = "none"
    unknown_severity: str = "unknown"
    allow: tuple[AllowedAdvisory, ...] = ()
    on_unreachable: Literal["fail", "warn"] = "fail"
    service: str = "pypi"
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        for key in ("max_severity", "unknown_severity"):
            if getattr(self, key) not in SEVERITIES:
                raise GateConfigError(
                    f"vulnerabilities.{key}: {getattr(self, key)!r}; allowed: {list(SEVERITIES)}"
                )
        if self.on_unreachable not in ("fail", "warn"):
            raise GateConfigError(
                f"vulnerabilities.on_unreachable: {self.on_unreachable!r}; allowed: ['fail', 'warn']"
            )
        if self.service not in SERVICES:
            raise GateConfigError(f"vulnerabilities.service: {self.service!r}; allowed: {list(SERVICES)}")

    @classmethod
    def coerce(cls, value: VulnerabilityPolicy | Mapping[str, Any] | bool) -> VulnerabilityPolicy:
        if isinstance(value, VulnerabilityPolicy):
            return value
        if value is True:
            return cls()
        if not isinstance(value, Mapping):
            raise GateConfigError(
                f"vulnerabilities: {value!r}; expected a mapping, a VulnerabilityPolicy or True"
            )
        allowed = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise GateConfigError(f"vulnerabilities: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        data = dict(value)
        data["allow"] = tuple(
            AllowedAdvisory.parse(a, f"vulnerabilities.allow[{i}]")
            for i, a in enumerate(data.get("allow") or [])
        )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["allow"] = [{**asdict(a), "expires": a.expires.isoformat()} for a in self.allow]
        return data


@dataclass
class ScanResult:
    """What the gate decided, and why."""

    status: Literal["passed", "refused", "unaudited"]
    refused: list[dict[str, Any]] = field(default_factory=list)
    allowed: list[dict[str, Any]] = field(default_factory=list)
    unaudited: list[dict[str, Any]] = field(default_factory=list)
    audited: int = 0
    service: str = "pypi"
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.status != "refused"

    def describe(self) -> str:
        lines = [f"vulnerability scan ({self.service}): {self.status}, {self.audited} packages audited"]
        lines += [
            f"refused {r['package']}=={r['version']} {r['id']} (severity {r['severity']}; fixed in "
            f"{', '.join(r['fix_versions']) or 'no release'}){': ' + r['why'] if r.get('why') else ''}"
            for r in self.refused
        ]
        lines += [
            f"allowed {a['package']}=={a['version']} {a['id']} until {a['expires']}: {a['reason']}"
            for a in self.allowed
        ]
        if self.unaudited:
            names = ", ".join(f"{u['package']} ({u['why']})" for u in self.unaudited)
            lines.append(f"not audited by {self.service}: {names}")
        if self.error:
            lines.append(f"the scan did not run: {self.error}")
        return "; ".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _canonical(name: str) -> str:
    return str(name).strip().lower().replace("_", "-").replace(".", "-")


def locked_requirements(lines: Sequence[str]) -> list[str]:
    """Pin every requirement to the version installed here: ``name==version`` (markers kept).

    A requirement this environment does not hold, or whose marker does not apply here, keeps its own
    pin when it has an exact one and is otherwise left out (it is not what the Bento serves with here).
    """
    import importlib.metadata

    from packaging.requirements import InvalidRequirement, Requirement

    out: dict[str, str] = {}
    for line in lines:
        text = line.strip()
        if not text or text.startswith(("#", "-")):
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = _canonical(req.name)
        try:
            out[name] = f"{name}=={importlib.metadata.version(req.name)}"
        except importlib.metadata.PackageNotFoundError:
            exact = [s.version for s in req.specifier if s.operator == "=="]
            if exact:
                out[name] = f"{name}=={exact[0]}"
    return sorted(out.values())


def audit(requirements: Sequence[str], policy: VulnerabilityPolicy) -> dict[str, Any]:
    """Run pip-audit on pinned ``requirements``; return its JSON report, or ``{"error": ...}``."""
    with tempfile.TemporaryDirectory(prefix="mlops-audit-") as tmp:
        path = Path(tmp, "requirements.txt")
        path.write_text("\n".join(requirements) + "\n")
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            str(path),
            "--no-deps",
            "--disable-pip",
            "--format",
            "json",
            "--desc",
            "on",
            "--aliases",
            "on",
            "--progress-spinner",
            "off",
            "--vulnerability-service",
            policy.service,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=policy.timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            return {"error": f"pip-audit did not finish within {policy.timeout_s:g} s"}
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"pip-audit exited {done.returncode}: {' '.join(tail)[:500]}"}
    return report


def judge(report: Mapping[str, Any], policy: VulnerabilityPolicy, today: date) -> ScanResult:
    """Apply ``policy`` to a pip-audit JSON report (or ``{"error": ...}`` when it did not run)."""
    result = ScanResult(status="passed", service=policy.service)
    if report.get("error"):
        result.error = str(report["error"])
    rank = SEVERITIES.index
    for dep in report.get("dependencies") or []:
        package = _canonical(dep.get("name", ""))
        if dep.get("skip_reason"):
            result.unaudited.append({"package": package, "why": dep["skip_reason"]})
            continue
        result.audited += 1
        for vuln in dep.get("vulns") or []:
            ids = {vuln.get("id"), *(vuln.get("aliases") or [])} - {None}
            severity = str(vuln.get("severity") or policy.unknown_severity).lower()
            if severity not in SEVERITIES:
                severity = "unknown"
            entry = {
                "package": package,
                "version": dep.get("version"),
                "id": vuln.get("id"),
                "aliases": sorted(vuln.get("aliases") or []),
                "severity": severity,
                "fix_versions": list(vuln.get("fix_versions") or []),
            }
            allowance = next(
                (a for a in policy.allow if a.id in ids and (a.package is None or a.package == package)), None
            )
            if allowance is not None and today < allowance.expires:
                result.allowed.append(
                    {**entry, "expires": allowance.expires.isoformat(), "reason": allowance.reason}
                )
            elif allowance is not None:
                result.refused.append(
                    {**entry, "why": f"its allowance expired on {allowance.expires.isoformat()}"}
                )
            elif rank(severity) > rank(policy.max_severity):
                result.refused.append({**entry, "why": f"above max_severity {policy.max_severity}"})
    if result.refused:
        result.status = "refused"
    elif result.error or result.unaudited:
        result.status = "unaudited" if policy.on_unreachable == "warn" else "refused"
    return result
