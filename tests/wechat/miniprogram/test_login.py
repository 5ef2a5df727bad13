"""code2Session through the shared transport (docs/protocol/wechat-pay-v2.md §9); the login
API's statuses are tested in tests/accounts."""

import json
import logging
import traceback

import pytest
import requests

from wechat.miniprogram import InvalidCode, WeChatUnavailable

URL = "https://api.weixin.qq.com/sns/jscode2session"


def test_code2session_is_a_get_with_the_timeout(login, http_mock):
    http_mock.get(URL, body='{"openid": "o1", "session_key": "k"}', content_type="text/plain")

    session = login.code2session("c1")

    assert session.openid == "o1"
    request = http_mock.calls[0].request
    assert request.method == "GET" and request.body is None
    assert request.req_kwargs["timeout"] == (2.5, 7.5)


def test_a_chinese_errmsg_labelled_text_plain_is_read_as_utf8(login, http_mock):
    payload = {"errcode": 40029, "errmsg": "不合法的code rid: 1"}
    http_mock.get(URL, body=json.dumps(payload, ensure_ascii=False).encode(),
                  content_type="text/plain")

    with pytest.raises(InvalidCode) as caught:
        login.code2session("c1")

    assert "不合法的code" in str(caught.value)


def test_unreachable_is_unavailable_without_the_secret_anywhere(login, http_mock, caplog):
    caplog.set_level(logging.DEBUG)
    secret = login.config.app_secret
    http_mock.get(URL, body=requests.exceptions.ConnectionError(f"url: {URL}?secret={secret}"))

    with pytest.raises(WeChatUnavailable) as caught:
        login.code2session("c1")

    assert "unreachable" in str(caught.value)
    assert secret not in "".join(traceback.format_exception(caught.value))
    assert "code2session unreachable: ConnectionError" in caplog.text
    assert secret not in caplog.text
