"""Home Assistant's web UI in a real browser: Debian's chromium driven by Playwright.

Chromium runs headless with a fresh profile and with its background networking
off (this machine's network is closed: without those flags it floods it with
refused connections). `HaUi` walks the pages a user walks — the login page, the
integrations dashboard, a config flow dialog, a device page — by what the user
sees (roles, labels, texts), never by Home Assistant's internal element names.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Locator, Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Generous: the first render of a panel loads its JavaScript chunks.
STEP_TIMEOUT_MS = 30_000


@contextmanager
def chromium(viewport: tuple[int, int] = (1280, 900)) -> Iterator[BrowserContext]:
    """A browser context on a fresh, temporary profile."""
    with (
        tempfile.TemporaryDirectory(prefix="homeseal-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=list(CHROMIUM_ARGS),
            headless=True,
            viewport={"width": viewport[0], "height": viewport[1]},
            accept_downloads=True,
        )
        context.set_default_timeout(STEP_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


class HaUi:
    """One signed-in user's page of Home Assistant's web UI."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    # -- signing in

    def login(self, username: str, password: str) -> None:
        """The login page, as a user fills it; waits for the overview to open."""
        self.goto("/")
        self.page.get_by_role("textbox", name="Username").fill(username)
        self.page.get_by_role("textbox", name="Password").fill(password)
        self.page.keyboard.press("Enter")
        self.page.wait_for_url("**/home/**")

    def wait_loaded(self) -> None:
        """The UI has finished loading: the sidebar shows Settings and the "Loading data"
        splash is gone (it stays for ever when a core integration cannot be imported)."""
        self.page.get_by_text("Settings", exact=True).first.wait_for()
        self.page.get_by_text("Loading data").wait_for(state="hidden")

    # -- config flows

    def start_integration(self, name: str) -> None:
        """Settings → Devices & services → Add integration → search `name` → choose it."""
        self.goto("/config/integrations/dashboard")
        self.page.get_by_role("button", name="Add integration").click()
        hint = "Search for a brand name"  # the label in 2026.2, the placeholder later
        search = self.page.get_by_role("textbox", name=hint).or_(self.page.get_by_placeholder(hint))
        search.fill(name)
        self.page.get_by_text(name, exact=True).last.click()

    # A dialog's fields are slotted into its shadow root, not inside the element that
    # has the dialog role, so the helpers below look them up on the page: the open
    # dialog is the last thing drawn.

    def dialogs(self) -> Locator:
        return self.page.get_by_role("dialog").or_(self.page.get_by_role("alertdialog"))

    def choose(self, text: str) -> None:
        """Pick a menu option of the open flow dialog."""
        self.page.get_by_text(text, exact=True).last.click()

    def textbox(self, label: str) -> Locator:
        """The field labelled `label` (a required field's label ends in "*")."""
        name = re.compile(rf"^{re.escape(label)}\*?$")
        return self.page.get_by_role("textbox", name=name).last

    def fill(self, label: str, value: str) -> None:
        self.textbox(label).fill(value)

    def field_value(self, label: str) -> str:
        return self.textbox(label).input_value()

    def expand(self, section_name: str) -> None:
        self.page.get_by_text(section_name, exact=True).last.click()

    def submit(self) -> None:
        self.page.get_by_role("button", name="Submit").last.click()

    def wait_text(self, text: str, timeout_ms: float = STEP_TIMEOUT_MS) -> None:
        self.page.get_by_text(text).first.wait_for(timeout=timeout_ms)

    def close_dialog(self) -> None:
        self.page.get_by_role("button", name="Close").last.click()
        expect(self.dialogs()).to_have_count(0, timeout=STEP_TIMEOUT_MS)

    # -- pages

    def open_device(self, name: str) -> None:
        """Settings → Devices → the device called `name`."""
        self.goto("/config/devices/dashboard")
        self.page.get_by_text(name, exact=True).first.click()
        self.page.wait_for_url("**/config/devices/device/**")
        self.page.get_by_text("Device info").wait_for()

    def toggle(self, entity_name: str) -> Locator:
        """The switch of an entity's row on a device page: the one level with the
        entity's name (HA 2026.2 names the switch after the entity, newer ones leave
        it unnamed, so the accessible name cannot find it on both)."""
        label = self.page.get_by_text(entity_name, exact=True).first
        label.wait_for(timeout=STEP_TIMEOUT_MS)
        switches = self.page.get_by_role("switch")
        switches.first.wait_for(timeout=STEP_TIMEOUT_MS)

        def middle(locator: Locator) -> float:
            box = locator.bounding_box()
            return box["y"] + box["height"] / 2 if box else float("inf")

        row = middle(label)
        return switches.nth(
            min(range(switches.count()), key=lambda i: abs(middle(switches.nth(i)) - row))
        )

    def flip(self, entity_name: str) -> None:
        """Click an entity's switch where a user does: newer HA draws the switch's
        thumb over its input, which Playwright's hit test would count as covered."""
        self.toggle(entity_name).click(force=True)

    def wait_shown(self, text: str, timeout_ms: float = STEP_TIMEOUT_MS) -> None:
        """Wait until the page reads `text`, as a screen reader reads it: an entity's
        name and state ("Door Open") sit in separate elements of one row."""
        deadline = time.monotonic() + timeout_ms / 1000
        while text not in (seen := self.page.locator("body").aria_snapshot()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never read {text!r}; it read:\n{seen}")
            self.page.wait_for_timeout(50)

    def download(self, button_text: str) -> Any:
        """Click a download link; returns Playwright's Download."""
        with self.page.expect_download() as info:
            self.page.get_by_text(button_text).first.click()
        return info.value

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        return path
