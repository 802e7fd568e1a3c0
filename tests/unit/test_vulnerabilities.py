"""The vulnerability gate on pip-audit's own JSON, and one real scan when the service answers."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from airflow_mlops_provider.exceptions import GateConfigError
from airflow_mlops_provider.vulnerabilities import VulnerabilityPolicy, audit, judge, locked_requirements

TODAY = date(2026, 12, 3)


def pip_audit_report() -> dict[str, Any]:
    """The report pip-audit writes (its own JSON formatter) for a Bento pinning requests 2.25.1.

    The advisory is the real one (CVE-2023-32681: requests leaks Proxy-Authorization headers on
    redirects, fixed in 2.31.0); the vulnerability service is not reachable from this machine, so the
    service's answer is built here rather than recorded, and pip-audit formats it.
    """
    import json

    from packaging.version import Version
    from pip_audit._format.json import JsonFormat
    from pip_audit._service.interface import ResolvedDependency, VulnerabilityResult

    result = {
        ResolvedDependency("requests", Version("2.25.1")): [
            VulnerabilityResult(
                id="PYSEC-2023-74",
                description="Requests forwards proxy-authorization headers to destination servers on redirect",
                fix_versions=[Version("2.31.0")],
                aliases={"CVE-2023-32681", "GHSA-j8r2-6x86-q33q"},
            )
        ],
        ResolvedDependency("pandas", Version("2.2.3")): [],
    }
    return json.loads(JsonFormat(output_desc=True, output_aliases=True).format(result, []))


def skipped_report() -> dict[str, Any]:
    import json

    from packaging.version import Version
    from pip_audit._format.json import JsonFormat
    from pip_audit._service.interface import ResolvedDependency, SkippedDependency

    result = {
        ResolvedDependency("pandas", Version("2.2.3")): [],
        SkippedDependency(
            "requests", "Dependency not found on PyPI and could not be audited: requests (2.25.1)"
        ): [],
    }
    return json.loads(JsonFormat(output_desc=True, output_aliases=True).format(result, []))


def test_a_known_advisory_refuses_the_bento_naming_it_and_its_fix():
    result = judge(pip_audit_report(), VulnerabilityPolicy(), TODAY)
    assert result.status == "refused"
    assert not result.passed
    (refused,) = result.refused
    assert (refused["package"], refused["version"], refused["id"]) == ("requests", "2.25.1", "PYSEC-2023-74")
    assert refused["severity"] == "unknown"  # pip-audit's JSON carries none: fail closed
    text = result.describe()
    assert "refused requests==2.25.1 PYSEC-2023-74" in text
    assert "fixed in 2.31.0" in text
    assert result.audited == 2


@pytest.mark.parametrize(
    ("today", "status"),
    [
        pytest.param(date(2026, 12, 31), "passed", id="before-expiry"),
        pytest.param(date(2027, 1, 1), "refused", id="expired"),
    ],
)
def test_an_allow_listed_advisory_passes_until_its_expiry(today, status):
    policy = VulnerabilityPolicy.coerce(
        {
            "allow": [
                {
                    "id": "CVE-2023-32681",
                    "expires": "2027-01-01",
                    "reason": "no proxies in the serving path",
                    "package": "requests",
                }
            ]
        }
    )
    result = judge(pip_audit_report(), policy, today)
    assert result.status == status
    if status == "passed":
        assert result.allowed[0]["reason"] == "no proxies in the serving path"
    else:
        assert result.refused[0]["why"] == "its allowance expired on 2027-01-01"


def test_an_allowance_for_another_package_does_not_apply():
    policy = VulnerabilityPolicy.coerce(
        {"allow": [{"id": "PYSEC-2023-74", "expires": "2030-01-01", "reason": "x", "package": "urllib3"}]}
    )
    assert judge(pip_audit_report(), policy, TODAY).status == "refused"


def test_a_severity_threshold_applies_where_the_severity_is_known():
    report = pip_audit_report()
    assert judge(report, VulnerabilityPolicy(max_severity="high", unknown_severity="medium"), TODAY).passed
    assert not judge(report, VulnerabilityPolicy(max_severity="low", unknown_severity="medium"), TODAY).passed
    report["dependencies"][0]["vulns"][0]["severity"] = "CRITICAL"
    assert not judge(
        report, VulnerabilityPolicy(max_severity="high", unknown_severity="medium"), TODAY
    ).passed


def test_a_service_that_cannot_audit_fails_closed_unless_the_dag_says_warn():
    closed = judge(skipped_report(), VulnerabilityPolicy(), TODAY)
    assert closed.status == "refused"
    assert "not audited by pypi: requests (Dependency not found on PyPI" in closed.describe()
    warned = judge(skipped_report(), VulnerabilityPolicy(on_unreachable="warn"), TODAY)
    assert warned.status == "unaudited"
    assert warned.passed
    assert (
        judge({"error": "pip-audit exited 1: connection refused"}, VulnerabilityPolicy(), TODAY).status
        == "refused"
    )


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        pytest.param({"max_severity": "severe"}, "allowed: \\['none'", id="severity"),
        pytest.param(
            {"allow": [{"id": "X", "expires": "soon", "reason": "r"}]}, "is not a date", id="expiry"
        ),
        pytest.param(
            {"allow": [{"id": "X", "expires": "2027-01-01", "reason": " "}]}, "say why", id="reason"
        ),
        pytest.param({"on_unreachable": "ignore"}, "allowed: \\['fail', 'warn'\\]", id="unreachable"),
        pytest.param({"services": "osv"}, "unknown key", id="typo"),
    ],
)
def test_a_malformed_policy_names_what_is_wrong(policy, message):
    with pytest.raises(GateConfigError, match=message):
        VulnerabilityPolicy.coerce(policy)


def test_requirements_are_pinned_to_what_this_environment_serves_with():
    import importlib.metadata

    pinned = locked_requirements(
        ["pandas", "scikit-learn==0.0.1", "numpy>=1", "no-such-package==1.2.3", 'tomli; python_version < "3"']
    )
    assert f"pandas=={importlib.metadata.version('pandas')}" in pinned
    assert f"scikit-learn=={importlib.metadata.version('scikit-learn')}" in pinned
    assert "no-such-package==1.2.3" in pinned
    assert not [p for p in pinned if p.startswith("tomli")]


@pytest.mark.timeout(300)
def test_a_real_scan_of_a_pin_with_a_known_advisory():
    report = audit(["requests==2.25.1"], VulnerabilityPolicy(timeout_s=120))
    deps = report.get("dependencies") or []
    if report.get("error") or not deps or deps[0].get("skip_reason"):
        pytest.skip(f"the vulnerability service cannot be reached from here: {report.get('error') or deps}")
    result = judge(report, VulnerabilityPolicy(), date.today())
    assert result.status == "refused"
    assert "CVE-2023-32681" in {a for r in result.refused for a in [r["id"], *r["aliases"]]}
