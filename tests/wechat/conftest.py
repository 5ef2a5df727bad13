"""Fixtures shared by the wire-protocol tests of tests/wechat/."""

import re
import time
from pathlib import Path

import pytest

NOTES = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "wechat-pay-v2.md"


@pytest.fixture(scope="session")
def bill_example() -> bytes:
    """The example trade bill of docs/protocol/wechat-pay-v2.md §14.10, taken from the notes
    themselves and built as §14.4 says the file is: a UTF-8 BOM, CRLF after every line."""
    section = NOTES.read_text(encoding="utf-8").split("### 14.10", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None, "§14.10 has no example block"
    lines = block.group(1).splitlines()
    assert lines[0].startswith("交易时间,") and lines[-1].startswith("`2,")
    return b"\xef\xbb\xbf" + "".join(line + "\r\n" for line in lines).encode("utf-8")


@pytest.fixture
def server_in_new_york(monkeypatch):
    """The process's local zone is not Beijing (Django sets it from TIME_ZONE otherwise)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
