"""Fixtures for the mini-program server API client: WeChat is ``responses`` (tests/conftest.py)."""

import pytest

from wechat.miniprogram import MiniProgramClient, MiniProgramConfig, WxLoginClient, WxLoginConfig


@pytest.fixture
def mp() -> MiniProgramClient:
    """A client of the official message-push example's AppID, with unusual timeouts so tests
    can see they are passed on."""
    config = MiniProgramConfig(
        appid="wxba5fad812f8e6fb9",
        app_secret="mp-app-secret-0123456789abcdef00",
        api_base="https://api.weixin.qq.com",
        timeout=(1.25, 4.5),
    )
    return MiniProgramClient(config)


@pytest.fixture
def login() -> WxLoginClient:
    """A code2Session client with unusual timeouts, so tests can see they are passed on."""
    config = WxLoginConfig(
        appid="wx1", app_secret="login-secret-0123456789abcdef000", timeout=(2.5, 7.5)
    )
    return WxLoginClient(config)
