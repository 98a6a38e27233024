"""The console in Debian's Chromium, driven by Playwright, against the running pipeline.

A person's path through it: give the token, find the carphone driver's Unknown sighting with its
snapshot in the events timeline, enroll it as a new person, and see that name in the live view.
The screenshot goes to the test's folder, and to $FACESTREAM_SCREENSHOT when set (the README's).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.console.conftest import WRITE, Console

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.fixture
def page() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as pw:
        # Playwright gives the browser a fresh temporary profile (its --user-data-dir) itself.
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 860})
        finally:
            browser.close()


def test_enroll_the_driver_from_the_console_and_see_him_named_live(
    console: Console, page: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.set_default_timeout(60_000)
    page.goto(console.url + "/")
    expect(page.locator("#token-bar")).to_be_visible()  # the API answered 401
    page.fill("#token", WRITE)
    page.click("#token-save")
    expect(page.locator(".camera[data-camera=carphone] img.stream")).to_be_visible()

    page.click("nav button[data-tab=events]")
    page.select_option("#f-camera", "carphone")
    page.select_option("#f-unknown", "true")
    page.click("#f-apply")
    row = page.locator(".event[data-name=Unknown]:has(input.enroll-name)").first
    expect(row).to_be_visible(timeout=120_000)
    snapshot = row.locator("img.snap")
    page.wait_for_function("img => img.complete && img.naturalWidth > 30", arg=snapshot.element_handle())
    assert row.locator(".camera").inner_text() == "carphone"

    row.locator("input.enroll-name").fill("driver")
    row.locator("button.enroll").click()
    expect(page.locator("#status")).to_contain_text("Enrolled driver")

    page.click("nav button[data-tab=live]")
    caption = page.locator(".camera[data-camera=carphone] .now")
    expect(caption).to_contain_text("driver", timeout=120_000)  # match reloaded the gallery
    frame = page.locator(".camera[data-camera=carphone] img.stream")
    page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=frame.element_handle())
    page.wait_for_timeout(1500)  # a few more drawn frames with the new name
    shot = tmp_path / "console.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    target = os.environ.get("FACESTREAM_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)

    page.click("nav button[data-tab=library]")
    expect(page.locator(".person[data-name=driver] .thumbs img")).to_have_count(1)
