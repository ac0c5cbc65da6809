"""Debian's chromium driven by Playwright (no browser download).

The browser lives for one test module: Playwright's sync API keeps an event
loop running in the main thread, which other modules' asyncio tests need free.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


DESKTOP = {"width": 1280, "height": 860}


def open_tab(browser: Any, viewport: dict[str, int] | None = None) -> Any:
    """A tab in a context of its own (close it with ``tab.context.close()``) whose
    console errors gather in ``tab.console_errors``."""
    context = browser.new_context(viewport=viewport or DESKTOP)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.console_errors = errors
    return tab


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    tab = open_tab(browser)
    yield tab
    tab.context.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Any, live_server: Any, username: str) -> None:
    """Log in through the form and wait until the home page's live socket is open:
    leaving a page while its socket is still connecting makes htmx's ws extension log
    the aborted handshake as a console error."""
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("caseforum-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
    page.wait_for_load_state("networkidle")
