"""Browser tests: Debian's Chromium, headless, driven by Playwright for Python.

Playwright talks to Chromium over the DevTools protocol, so it needs no driver binary
matching the browser's version (Selenium would need Debian's chromium-driver), and it
reports console messages, uncaught page errors and every response as events, which is
how a server error or a script error anywhere fails these tests. It never downloads a
browser here: ``executable_path`` points at the system's.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connections

from accounts.models import User

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI and here
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STAFF_PASSWORD = "a-long-browser-test-password"


@dataclass
class Problems:
    """Whatever went wrong in the page, as the browser saw it."""

    seen: list[str] = field(default_factory=list)

    def watch(self, page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.seen.append(f"script error: {error}"))
        page.on("response", self._response)

    def _console(self, message) -> None:
        if message.type == "error":
            self.seen.append(f"console error: {message.text} ({message.location.get('url')})")

    def _response(self, response) -> None:
        if response.status >= 500:
            self.seen.append(f"server error: {response.status} {response.url}")


@dataclass
class Browser:
    """One page, its problems, and numbered screenshots in the test's tmp dir."""

    page: object
    problems: Problems
    shots: Path
    count: int = 0

    def shot(self, name: str) -> Path:
        assert not self.problems.seen, self.problems.seen
        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


@pytest.fixture
def staff(transactional_db) -> User:
    return User.objects.create_superuser("boss", "boss@example.com", STAFF_PASSWORD)


@pytest.fixture
def chromium(monkeypatch) -> Iterator:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    # Playwright's sync API keeps an asyncio loop on this thread, which Django then takes
    # for async code and refuses the ORM; the tests' ORM calls are plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()
            # Meanwhile the ORM had connections of its own (Django keys them by context):
            # close them, or PostgreSQL cannot drop the test database at the end.
            connections.close_all()


@pytest.fixture
def open_browser(chromium, tmp_path) -> Iterator:
    """``open_browser(**context_options)``: a fresh page; whatever went wrong in any page
    it showed fails the test at each screenshot and at the end."""
    opened: list[Browser] = []

    def open_page(**context_options) -> Browser:
        context = chromium.new_context(viewport={"width": 1440, "height": 900}, **context_options)
        page = context.new_page()
        page.set_default_timeout(15_000)
        problems = Problems()
        problems.watch(page)
        opened.append(Browser(page=page, problems=problems, shots=tmp_path))
        return opened[-1]

    yield open_page
    assert [problem for browser in opened for problem in browser.problems.seen] == []


def log_in(browser: Browser, base_url: str, username: str = "boss") -> None:
    page = browser.page
    page.goto(f"{base_url}/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#shop-dashboard")
