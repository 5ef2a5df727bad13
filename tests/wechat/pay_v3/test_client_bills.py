# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import dataclasses
import gzip
import hashlib
import io
import logging
from datetime import date, datetime

import pytest
import requests
import responses

from tests.wx_v3 import (
    BASE,
    error_answer,
    request_signature_ok,
    signed_answer,
)
from wechat.pay_v3 import (
    BillIntegrityError,
    InvalidRequest,
    NoStatement,
    StatementCreating,
    TradeBill,
    WxPayV3Client,
    WxPayV3RequestInvalid,
    WxPayV3SignatureError,
    WxPayV3Unavailable,
)

TRADEBILL = f"{BASE}/v3/bill/tradebill"
DOWNLOAD = f"{BASE}/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA"
BILL = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态\r\n"
    "`2025-01-01 08:00:30,`wx1234567890abcdef,`1900000001,`0,`,"
    "`4200002501202501018123456789,`T20250101000000001,`oUpF8u,`JSAPI,`SUCCESS\r\n"
).encode()
SHA1 = hashlib.sha1(BILL).hexdigest().upper()


def bill_answer(**changes):
    answer = {"hash_type": "SHA1", "hash_value": SHA1, "download_url": DOWNLOAD}
    return {**answer, **changes}


def test_trade_bill_asks_for_a_day_and_returns_the_download(
    client, mocked, merchant_key, wechat_key
):
    def wechat(request):
        request_signature_ok(request, merchant_key.public_key())
        assert request.path_url == "/v3/bill/tradebill?bill_date=2025-01-01&bill_type=ALL"
        return signed_answer(wechat_key, bill_answer())

    mocked.add_callback(responses.GET, TRADEBILL, callback=wechat)
    bill = client.trade_bill(bill_date=date(2025, 1, 1))
    assert (bill.download_url, bill.hash_type, bill.hash_value) == (DOWNLOAD, "SHA1", SHA1)
    assert bill.tar_type is None
    assert "token" not in repr(bill)


def test_trade_bill_gzip(client, mocked, wechat_key):
    mocked.add_callback(
        responses.GET, TRADEBILL, callback=lambda r: signed_answer(wechat_key, bill_answer())
    )
    bill = client.trade_bill(bill_date=date(2025, 1, 1), bill_type="SUCCESS", tar_type="GZIP")
    assert bill.tar_type == "GZIP"
    assert mocked.calls[0].request.path_url.endswith("bill_type=SUCCESS&tar_type=GZIP")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bill_date": datetime(2025, 1, 1)},
        {"bill_date": "2025-01-01"},
        {"bill_date": date(2025, 1, 1), "bill_type": "all"},
        {"bill_date": date(2025, 1, 1), "tar_type": "ZIP"},
    ],
)
def test_trade_bill_refuses_odd_arguments(client, mocked, kwargs):
    with pytest.raises(WxPayV3RequestInvalid):
        client.trade_bill(**kwargs)


def test_a_day_without_trades_is_its_own_error(client, mocked):
    mocked.add_callback(
        responses.GET,
        TRADEBILL,
        callback=lambda r: error_answer(400, "NO_STATEMENT_EXIST", "无交易"),
    )
    with pytest.raises(NoStatement) as caught:
        client.trade_bill(bill_date=date(2025, 1, 1))
    assert not caught.value.retryable


def test_a_bill_not_ready_yet_is_retryable(client, mocked):
    mocked.add_callback(
        responses.GET, TRADEBILL, callback=lambda r: error_answer(400, "STATEMENT_CREATING")
    )
    with pytest.raises(StatementCreating) as caught:
        client.trade_bill(bill_date=date(2025, 1, 1))
    assert caught.value.retryable


def test_trade_bill_answer_is_verified(client, mocked):
    mocked.add(responses.GET, TRADEBILL, json=bill_answer())
    with pytest.raises(WxPayV3SignatureError):
        client.trade_bill(bill_date=date(2025, 1, 1))


def test_trade_bill_answer_without_url_is_unavailable(client, mocked, wechat_key):
    answer = bill_answer(download_url="")
    mocked.add_callback(
        responses.GET, TRADEBILL, callback=lambda r: signed_answer(wechat_key, answer)
    )
    with pytest.raises(WxPayV3Unavailable):
        client.trade_bill(bill_date=date(2025, 1, 1))


# -- the download (§9.2) -------------------------------------------------------------------------


def test_download_streams_the_unsigned_file_and_checks_its_sha1(
    client, mocked, merchant_key, caplog
):
    caplog.set_level(logging.INFO, logger="wechat.pay_v3")

    def wechat(request):
        # Signed like any GET: the URL line is the download URL's path and query.
        request_signature_ok(request, merchant_key.public_key())
        assert request.path_url == DOWNLOAD.removeprefix(BASE)
        return 200, {"Content-Type": "application/octet-stream"}, BILL

    mocked.add_callback(responses.GET, DOWNLOAD, callback=wechat)
    out = io.BytesIO()
    size = client.download_bill(TradeBill(DOWNLOAD, "SHA1", SHA1), out, chunk_size=7)
    assert size == len(BILL)
    assert out.getvalue() == BILL
    assert mocked.calls[0].request.req_kwargs["stream"] is True
    assert mocked.calls[0].request.req_kwargs["timeout"] == (1.25, 4.5)
    assert "GET /v3/billdownload/file" in caplog.text
    assert "token" not in caplog.text


def test_gzip_bills_are_inflated_and_hashed_uncompressed(client, mocked):
    mocked.add(responses.GET, DOWNLOAD, body=gzip.compress(BILL))
    out = io.BytesIO()
    bill = TradeBill(DOWNLOAD, "SHA1", SHA1.lower(), tar_type="GZIP")
    assert client.download_bill(bill, out, chunk_size=5) == len(BILL)
    assert out.getvalue() == BILL


@pytest.mark.parametrize(
    "body, tar_type",
    [
        (BILL[:-1], None),  # truncated
        (BILL + b"x", None),
        (gzip.compress(BILL)[:-12], "GZIP"),  # truncated gzip
        (b"not gzip at all", "GZIP"),
        (gzip.compress(BILL + b"x"), "GZIP"),
    ],
)
def test_damaged_bills_are_refused(client, mocked, body, tar_type):
    mocked.add(responses.GET, DOWNLOAD, body=body)
    with pytest.raises(BillIntegrityError) as caught:
        client.download_bill(TradeBill(DOWNLOAD, "SHA1", SHA1, tar_type), io.BytesIO())
    assert caught.value.retryable


def test_unknown_hash_types_are_refused_before_downloading(client, mocked):
    with pytest.raises(WxPayV3Unavailable, match="hash_type"):
        client.download_bill(TradeBill(DOWNLOAD, "MD5", SHA1), io.BytesIO())


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/v3/billdownload/file?token=x",
        "http://api.mch.weixin.qq.com/v3/billdownload/file?token=x",
    ],
)
def test_our_authorization_goes_only_to_the_configured_host(client, mocked, url):
    with pytest.raises(WxPayV3Unavailable, match="host"):
        client.download_bill(TradeBill(url, "SHA1", SHA1), io.BytesIO())
    assert len(mocked.calls) == 0


def test_download_errors_are_typed(client, mocked):
    answer = error_answer(400, "INVALID_REQUEST", "token 已过期")
    mocked.add_callback(responses.GET, DOWNLOAD, callback=lambda r: answer)
    with pytest.raises(InvalidRequest):
        client.download_bill(TradeBill(DOWNLOAD, "SHA1", SHA1), io.BytesIO())


def test_download_interrupted_is_unavailable(client, mocked):
    mocked.add(responses.GET, DOWNLOAD, body=requests.ConnectionError("reset"))
    with pytest.raises(WxPayV3Unavailable):
        client.download_bill(TradeBill(DOWNLOAD, "SHA1", SHA1), io.BytesIO())


def test_download_works_against_a_configured_simulator_host(config, mocked):
    local = WxPayV3Client(dataclasses.replace(config, api_base="http://127.0.0.1:8081"))
    url = "http://127.0.0.1:8081/v3/billdownload/file?token=abc"
    mocked.add(responses.GET, url, body=BILL)
    assert local.download_bill(TradeBill(url, "SHA1", SHA1), io.BytesIO()) == len(BILL)
