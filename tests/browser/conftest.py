"""Browser tests: Debian's Chromium, headless, driven by Playwright for Python.

Playwright talks to Chromium over the DevTools protocol, so it needs no driver binary
matching the browser's version (Selenium would need Debian's chromium-driver), and it
reports console messages, uncaught page errors and every response as events, which is
how a server error or a script error anywhere fails these tests. It never downloads a
browser here: ``executable_path`` points at the system's.
"""

import os
from collections.abc import Iterator

import pytest
from django.db import connections

from accounts.models import User
from tests.browser.pages import STAFF_PASSWORD, Browser, Problems

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
