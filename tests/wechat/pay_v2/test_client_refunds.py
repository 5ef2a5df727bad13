"""refund (§7.1) and refundquery (§7.2) on the wire."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

from datetime import UTC, datetime

import pytest
import requests
import responses

from tests.wechat.pay_v2.answers import BASE, sent_fields, wechat_answer
from tests.wx import OFFICIAL_APPID, OFFICIAL_KEY, OFFICIAL_MCH_ID
from wechat.pay_v2 import (
    CertificateError,
    RateLimited,
    RefundNotExist,
    SystemBusy,
    WxPayBusinessError,
    WxPayClient,
    WxPayConfig,
    WxPayUnavailable,
    XMLError,
    from_xml,
)

REFUND = f"{BASE}/secapi/pay/refund"
REFUNDQUERY = f"{BASE}/pay/refundquery"
REFUND_ID = "50300103182020010413419046597"
ARGS = {
    "out_trade_no": "20240101000001",
    "out_refund_no": "R20240102000000abcdef0123456789",
    "total_fee": 101,
    "refund_fee": 50,
}


def accepted(**fields: str) -> bytes:
    base = {
        "out_trade_no": ARGS["out_trade_no"],
        "out_refund_no": ARGS["out_refund_no"],
        "refund_id": REFUND_ID,
        "refund_fee": "50",
        "total_fee": "101",
        "cash_fee": "101",
    }
    return wechat_answer(**{**base, **fields})


def test_refund_sends_the_fields_with_the_certificate_and_returns_refund_id(cert_client, mocked):
    mocked.add(responses.POST, REFUND, body=accepted())

    result = cert_client.refund(
        **ARGS, refund_desc="缺货", notify_url="https://shop.example.com/payment/refundnotify"
    )

    assert (result.refund_id, result.refund_fee) == (REFUND_ID, 50)
    assert mocked.calls[0].request.req_kwargs["cert"] == ("/c.pem", "/k.pem")
    fields = sent_fields(mocked)
    assert {k: fields[k] for k in ARGS} == {k: str(v) for k, v in ARGS.items()}
    assert fields["refund_desc"] == "缺货"
    assert fields["notify_url"] == "https://shop.example.com/payment/refundnotify"


def test_refund_leaves_out_optional_fields_not_given(cert_client, mocked):
    mocked.add(responses.POST, REFUND, body=accepted())
    cert_client.refund(**ARGS)
    assert not {"refund_desc", "notify_url"} & sent_fields(mocked).keys()


@pytest.mark.parametrize("field", ["total_fee", "refund_fee"])
@pytest.mark.parametrize("value", [0, -1, 0.5, True, "50"])
def test_refund_amounts_must_be_positive_int_fen(cert_client, field, value):
    with pytest.raises(ValueError, match="fen"):
        cert_client.refund(**{**ARGS, field: value})


def test_refund_without_certificate_is_refused_before_any_call(mocked):
    client = WxPayClient(
        WxPayConfig(appid=OFFICIAL_APPID, mch_id=OFFICIAL_MCH_ID, api_key=OFFICIAL_KEY)
    )
    with pytest.raises(CertificateError, match="cert_path"):
        client.refund(**ARGS)
    assert len(mocked.calls) == 0


def test_unreadable_certificate_file_is_a_certificate_error(cert_client):
    class NoCertificateFile(requests.Session):
        def post(self, *args, **kwargs):
            # What requests' HTTPAdapter.cert_verify raises before connecting.
            raise OSError("Could not find the TLS certificate file, invalid path: /c.pem")

    cert_client.session = NoCertificateFile()
    with pytest.raises(CertificateError, match="certificate"):
        cert_client.refund(**ARGS)


@pytest.mark.parametrize(
    ("err_code", "cls", "retryable"),
    [
        ("SYSTEMERROR", SystemBusy, True),
        ("BIZERR_NEED_RETRY", SystemBusy, True),
        ("FREQUENCY_LIMITED", RateLimited, True),
        ("NOTENOUGH", WxPayBusinessError, False),
        ("TRADE_OVERDUE", WxPayBusinessError, False),
    ],
)
def test_refund_business_errors_are_typed(cert_client, mocked, err_code, cls, retryable):
    mocked.add(responses.POST, REFUND, body=wechat_answer(result_code="FAIL", err_code=err_code))
    with pytest.raises(cls) as caught:
        cert_client.refund(**ARGS)
    assert caught.value.retryable is retryable


@pytest.mark.parametrize(
    "fields", [{"out_refund_no": "R-someone-else"}, {"refund_id": ""}], ids=["other", "no-id"]
)
def test_refund_answer_for_another_refund_is_unusable(cert_client, mocked, fields):
    mocked.add(responses.POST, REFUND, body=accepted(**fields))
    with pytest.raises(WxPayUnavailable):
        cert_client.refund(**ARGS)


def test_refund_timeout_is_unavailable(cert_client, mocked):
    mocked.add(responses.POST, REFUND, body=requests.exceptions.ReadTimeout())
    with pytest.raises(WxPayUnavailable, match="timeout"):
        cert_client.refund(**ARGS)


def query_answer(**fields: str) -> bytes:
    base = {
        "out_trade_no": ARGS["out_trade_no"],
        "total_fee": "101",
        "refund_count": "1",
        "out_refund_no_0": ARGS["out_refund_no"],
        "refund_id_0": REFUND_ID,
        "refund_channel_0": "ORIGINAL",
        "refund_fee_0": "50",
        "refund_status_0": "SUCCESS",
        "refund_recv_accout_0": "支付用户零钱",
        "refund_success_time_0": "2020-01-04 18:34:24",
    }
    return wechat_answer(**{**base, **fields})


def test_refund_query_reads_entry_zero_without_certificate(cert_client, mocked):
    mocked.add(responses.POST, REFUNDQUERY, body=query_answer())

    query = cert_client.refund_query(out_refund_no=ARGS["out_refund_no"])

    assert query.refund_status == "SUCCESS"
    assert query.refund_id == REFUND_ID
    assert query.refund_fee == 50
    assert query.recv_account == "支付用户零钱"
    assert query.success_time == datetime(2020, 1, 4, 10, 34, 24, tzinfo=UTC)
    assert mocked.calls[0].request.req_kwargs["cert"] is None
    assert from_xml(mocked.calls[0].request.body)["out_refund_no"] == ARGS["out_refund_no"]


def test_refund_query_of_a_refund_in_progress_has_no_success_time(cert_client, mocked):
    answer = query_answer(refund_status_0="PROCESSING", refund_success_time_0="")
    mocked.add(responses.POST, REFUNDQUERY, body=answer)
    query = cert_client.refund_query(out_refund_no=ARGS["out_refund_no"])
    assert (query.refund_status, query.success_time) == ("PROCESSING", None)


@pytest.mark.parametrize(
    "fields",
    [
        {"out_refund_no_0": "R-someone-else"},
        {"refund_success_time_0": "20200104183424"},
        {"refund_fee_0": "0.5"},
    ],
    ids=["other-refund", "time-format", "fee"],
)
def test_refund_query_answer_that_does_not_fit_is_unusable(cert_client, mocked, fields):
    mocked.add(responses.POST, REFUNDQUERY, body=query_answer(**fields))
    with pytest.raises(WxPayUnavailable):
        cert_client.refund_query(out_refund_no=ARGS["out_refund_no"])


def test_refund_query_of_an_unknown_refund_raises_refund_not_exist(cert_client, mocked):
    answer = wechat_answer(result_code="FAIL", err_code="REFUNDNOTEXIST")
    mocked.add(responses.POST, REFUNDQUERY, body=answer)
    with pytest.raises(RefundNotExist):
        cert_client.refund_query(out_refund_no="R1")


def test_from_xml_reads_another_root_only_when_asked():
    assert from_xml(b"<root><a>1</a></root>", root="root") == {"a": "1"}
    with pytest.raises(XMLError, match="<xml>"):
        from_xml(b"<root><a>1</a></root>")
    with pytest.raises(XMLError, match="<root>"):
        from_xml(b"<xml><a>1</a></xml>", root="root")
