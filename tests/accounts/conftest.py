"""Fixtures of the accounts tests."""

import pytest

from core.throttling import FailOpenScopedRateThrottle


@pytest.fixture
def login_rate_3_per_min(monkeypatch) -> None:
    monkeypatch.setattr(FailOpenScopedRateThrottle, "THROTTLE_RATES", {"login": "3/min"})
