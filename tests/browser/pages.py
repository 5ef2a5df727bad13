"""What the browser tests drive: a page with its problems watched, and the admin log-in."""

from dataclasses import dataclass, field
from pathlib import Path

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


def log_in(browser: Browser, base_url: str, username: str = "boss") -> None:
    page = browser.page
    page.goto(f"{base_url}/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#shop-dashboard")
