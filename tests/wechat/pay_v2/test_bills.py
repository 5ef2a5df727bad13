"""downloadbill on the wire (docs/protocol/wechat-pay-v2.md §14.2, §14.3, §14.8)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import gzip
import io
from datetime import date

import pytest
import requests
import responses

from tests.wechat.pay_v2.answers import BASE, sent_fields
from tests.wx import OFFICIAL_APPID, OFFICIAL_KEY, OFFICIAL_MCH_ID, cdata_xml, wx_sign
from wechat.bills import BillLine, BillSummary, iter_trade_bill
from wechat.pay_v2 import (
    HMAC_SHA256,
    MD5,
    BillError,
    BillNotReady,
    BillPermissionDenied,
    BillRequestInvalid,
    BillUnavailable,
    DownloadedBill,
    NoBill,
    WxPayClient,
    WxPayConfig,
    WxPayProtocolError,
    WxPayUnavailable,
    sign,
)

DOWNLOADBILL = f"{BASE}/pay/downloadbill"
DAY = date(2025, 3, 1)


def failure(return_msg: str, error_code: str = "") -> bytes:
    fields = {"return_code": "FAIL", "return_msg": return_msg}
    if error_code:
        fields["error_code"] = error_code
    return cdata_xml(fields)


def download(client, **kwargs) -> tuple[DownloadedBill, bytes]:
    out = io.BytesIO()
    result = client.download_bill(bill_date=kwargs.pop("bill_date", DAY), destination=out,
                                  **kwargs)
    return result, out.getvalue()


# -- the request -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("extra", "sign_type", "expected"),
    [
        ({}, MD5, "A045CCF2AA480FE8E1443189CA5AF7F2"),
        ({"sign_type": HMAC_SHA256}, HMAC_SHA256,
         "D6C50ED773BF571340C68140E212482BA5AB2C7A144370AD50359013E6E3C57E"),
        ({"tar_type": "GZIP"}, MD5, "C09C777343CF9A7713F3E1C9B9F0B9C6"),
    ],
)
def test_the_derived_request_vectors_of_the_notes(extra, sign_type, expected):
    params = {"appid": OFFICIAL_APPID, "mch_id": OFFICIAL_MCH_ID,
              "nonce_str": "ibuaiVcKdpRxkhJA", "bill_date": "20250301", "bill_type": "ALL",
              **extra}
    assert sign(params, OFFICIAL_KEY, sign_type) == expected


def test_the_request_is_signed_and_carries_date_and_type(client, mocked, bill_example):
    mocked.add(responses.POST, DOWNLOADBILL, body=bill_example)
    download(client)
    sent = sent_fields(mocked)
    assert sent["bill_date"] == "20250301" and sent["bill_type"] == "ALL"
    assert "tar_type" not in sent and sent["appid"] == OFFICIAL_APPID
    assert sent["sign"] == wx_sign(sent, OFFICIAL_KEY, sent["sign_type"])


def test_gzip_is_asked_for_with_tar_type(client, mocked, bill_example):
    mocked.add(responses.POST, DOWNLOADBILL, body=gzip.compress(bill_example))
    result, data = download(client, tar_type="GZIP", bill_type="SUCCESS")
    assert sent_fields(mocked)["tar_type"] == "GZIP"
    assert sent_fields(mocked)["bill_type"] == "SUCCESS"
    assert result == DownloadedBill(size=len(bill_example), gzip=True)
    assert data == bill_example


@pytest.mark.parametrize(
    "kwargs",
    [{"bill_type": "REVOKED"}, {"tar_type": "ZIP"}, {"bill_date": "2025-03-01"}],
)
def test_bad_arguments_are_refused_before_calling(client, kwargs):
    with pytest.raises(ValueError):
        download(client, **kwargs)


# -- success: the body streamed into the destination -----------------------------------------

def test_the_notes_example_is_streamed_as_is_and_parses(client, mocked, bill_example):
    mocked.add(responses.POST, DOWNLOADBILL, body=io.BufferedReader(io.BytesIO(bill_example)))
    result, data = download(client)
    assert result == DownloadedBill(size=len(bill_example), gzip=False)
    assert data == bill_example
    items = list(iter_trade_bill(io.BytesIO(data)))
    assert [type(item) for item in items] == [BillLine, BillLine, BillSummary]


def test_a_large_gzipped_bill_is_unpacked_on_the_fly(client, mocked, bill_example):
    header, rest = bill_example.split(b"\r\n", 1)
    row = rest.split(b"\r\n")[0] + b"\r\n"
    big = header + b"\r\n" + row * 20000 + rest
    mocked.add(responses.POST, DOWNLOADBILL, body=io.BufferedReader(io.BytesIO(gzip.compress(big))))
    result, data = download(client, tar_type="GZIP")
    assert result.size == len(big) and data == big and result.gzip


def test_a_truncated_gzip_is_unavailable(client, mocked, bill_example):
    mocked.add(responses.POST, DOWNLOADBILL, body=gzip.compress(bill_example)[:-12])
    with pytest.raises(WxPayUnavailable, match="gzip"):
        download(client, tar_type="GZIP")


# -- failures ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("body", "error", "retryable"),
    [
        (failure("No Bill Exist", "20002"), NoBill, False),
        (failure("no bill exist"), NoBill, False),
        (failure("Bill Creating"), BillNotReady, True),
        (failure("System Error", "100"), BillUnavailable, True),
        (failure("下载失败", "20003"), BillUnavailable, True),
        (failure("CompressGZip Error"), BillUnavailable, True),
        (failure("当前商户号账单API权限已经关闭", "20007"), BillPermissionDenied, False),
        (failure("invalid bill_date", "20001"), BillRequestInvalid, False),
        (failure("sign error", "20001"), BillRequestInvalid, False),
        (failure("something new"), BillError, False),
    ],
)
def test_failure_xml_is_typed(client, mocked, body, error, retryable):
    mocked.add(responses.POST, DOWNLOADBILL, body=body)
    with pytest.raises(error) as caught:
        download(client)
    assert type(caught.value) is error and caught.value.retryable is retryable
    assert isinstance(caught.value, WxPayProtocolError)


def test_no_bill_keeps_the_code_and_writes_nothing(client, mocked):
    mocked.add(responses.POST, DOWNLOADBILL, body=b"\xef\xbb\xbf\r\n " + failure(
        "No Bill Exist", "20002"))
    out = io.BytesIO()
    with pytest.raises(NoBill) as caught:
        client.download_bill(bill_date=DAY, destination=out)
    assert caught.value.error_code == "20002" and out.getvalue() == b""
    assert "No Bill Exist" in str(caught.value)


def test_the_failure_xml_is_not_checked_for_a_sign(client, mocked):
    # §14.3: nothing in this answer is signed; a sign check would turn it into garbage.
    mocked.add(responses.POST, DOWNLOADBILL, body=failure("Bill Creating"))
    with pytest.raises(BillNotReady):
        download(client)


@pytest.mark.parametrize(
    "answer",
    [
        {"body": b"<xml><return_code>FAIL</return_code>"},
        {"body": b""},
        {"body": b"oops", "status": 502},
        {"body": requests.ConnectTimeout("slow")},
        {"body": requests.ConnectionError("reset")},
    ],
)
def test_no_usable_answer_is_unavailable(client, mocked, answer):
    mocked.add(responses.POST, DOWNLOADBILL, **answer)
    with pytest.raises(WxPayUnavailable):
        download(client)


def test_the_call_uses_the_configured_timeouts(mocked, bill_example):
    config = WxPayConfig(appid=OFFICIAL_APPID, mch_id=OFFICIAL_MCH_ID, api_key=OFFICIAL_KEY,
                         timeout=(1.5, 42.0))
    mocked.add(responses.POST, DOWNLOADBILL, body=bill_example)
    download(WxPayClient(config))
    assert mocked.calls[0].request.req_kwargs["timeout"] == (1.5, 42.0)
    assert mocked.calls[0].request.req_kwargs["stream"] is True
