"""The browser suite: Home Assistant's web UI in Debian's chromium, driven by
Playwright, on each supported Home Assistant: the oldest (2026.2.3, this venv) and the
newest the registry offers (2026.10.4, Python 3.14, scripts/ha-newest).

One system per Home Assistant version (relay, simulated device, `hass` with its web
UI), shared by the module; its tests are the steps of one user's walk, in order:
log in, add the relay account, add the device, use it, download diagnostics. A
failing step saves a screenshot; the steps also save the screenshots a reviewer
wants to see, under test-artifacts/browser/<version>/ in the checkout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_socket  # type: ignore[import-untyped]

from testbed.browser import HaUi, chromium
from testbed.paths import ROOT
from testbed.process import TestbedError
from testbed.system import System

ARTIFACTS = ROOT / "test-artifacts" / "browser"
OWNER, OWNER_PASSWORD = "owner", "browser owner password"
VERSIONS = ["oldest", "newest"]
NOT_RECOGNISED_AFTER_S = 4


@pytest.fixture(scope="module", params=VERSIONS)
def system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    pytest_socket.enable_socket()
    newest = request.param == "newest"
    state = tmp_path_factory.mktemp(f"browser-{request.param}")
    sys_ = System(
        state,
        frontend=True,
        newest_ha=newest,
        ha_user=OWNER,
        ha_password=OWNER_PASSWORD,
        # The walk resets the device and waits for the repair issue: seconds, not the
        # 10 minutes a user's HA waits.
        ha_env={"HOMESEAL_NOT_RECOGNISED_AFTER": str(NOT_RECOGNISED_AFTER_S)},
    )
    try:
        sys_.up(account=False, pair=False)
    except TestbedError as err:
        logs = "\n".join(f"--- {p.name} ---\n{p.output()[-2500:]}" for p in sys_.parts)
        sys_.down()
        pytest.fail(f"the system did not come up: {err}\n{logs}")
    try:
        yield sys_
    finally:
        sys_.down()


@pytest.fixture(scope="module")
def artifacts(system: System, request: pytest.FixtureRequest) -> Path:
    version = "newest" if system.hass.newest else "oldest"
    path = ARTIFACTS / version
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("FAILED-*"):  # a failure shown is one of this run
        stale.unlink()
    return path


@pytest.fixture(scope="module")
def ui(system: System) -> Iterator[HaUi]:
    """One signed-in browser for the whole walk."""
    pytest_socket.enable_socket()
    with chromium() as context:
        yield HaUi(context.new_page(), system.hass.url)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "ui" in getattr(item, "funcargs", {}):
        ui: HaUi = item.funcargs["ui"]  # type: ignore[attr-defined]
        version = "newest" if item.funcargs["system"].hass.newest else "oldest"  # type: ignore[attr-defined]
        # What the page showed, as a picture and as a screen reader reads it (the names
        # that the test's locators match).
        path = ARTIFACTS / version / f"FAILED-{item.name}.png"
        try:
            ui.screenshot(path)
            path.with_suffix(".aria.txt").write_text(ui.page.locator("body").aria_snapshot())
        except Exception as err:  # a failing browser must not hide the test's failure
            report.sections.append(("screenshot", f"no screenshot: {err}"))
        else:
            report.sections.append(("screenshot", f"{path} and {path.with_suffix('.aria.txt')}"))


@pytest.fixture(autouse=True)
def verify_cleanup() -> None:
    """Replaces the HA test plugin's leak check for this suite. That check drives an
    asyncio loop on the test's thread after each test, where Playwright's synchronous
    API keeps its own loop running; and this suite runs no in-process Home Assistant
    whose tasks it could check (hass is a real process here)."""
