"""A fresh local stack on free ports and a headless Debian Chromium driven by Playwright.

The browser is the system's ``/usr/bin/chromium`` (``make test`` installs it); Playwright's own
browser download is never used. Screenshots go to ``test-artifacts/e2e/`` and are kept; a failing
test leaves a screenshot and the page's HTML there too.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_mlops_provider.processes import free_port
from mlops_demo.stack import LocalStack, StackConfig
from tests.conftest import REPO, SESSION_DIR

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Milliseconds a locator or assertion waits; this machine is slow and the UI renders client-side.
UI_TIMEOUT_MS = 60_000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    # Lets the page fixture tell, at teardown, whether the test itself failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """Airflow standalone and MLflow on free loopback ports, all state in a fresh directory; one for
    the session, since it takes a minute or two to start (the tests use different DAGs)."""
    config = StackConfig(
        home=Path(tempfile.mkdtemp(prefix="e2e-stack-", dir=SESSION_DIR)),
        dags_folder=REPO / "dags",
        airflow_port=free_port(),
        mlflow_port=free_port(),
        bento_port=free_port(),
    )
    stack = LocalStack(config)
    try:
        stack.init()
        stack.start_mlflow(workers=1)
        stack.start_airflow()
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def chromium() -> Path:
    """The system Chromium; its absence fails the tests (before any stack starts), never skips them."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the e2e tests drive Debian's chromium. Install it with `make browser` "
            "(`make test` does) or `apt-get install chromium`.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
def page(chromium: Path, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page of a headless Chromium with a throwaway profile; on failure, keep what it showed."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with (
        tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=profile,
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            yield page
            report = getattr(request.node, "report_call", None)
            if report is None or report.failed:
                name = re.sub(r"[^\w.-]+", "_", request.node.name)
                page.screenshot(path=ARTIFACTS / f"{name}-failure.png", full_page=True)
                (ARTIFACTS / f"{name}-failure.html").write_text(page.content())
        finally:
            context.close()
