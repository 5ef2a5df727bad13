"""A value XML 1.0 cannot carry is refused as a WeChat Pay protocol error, never sent.

Callers catch ``WxPayError`` around every call (prepay, refunds, reconciliation); a bare
``ValueError`` from the XML builder slipped past them all and became a 500 or an aborted run.
"""

import pytest

from wechat.pay_v2 import WxPayError, WxPayRequestInvalid, to_xml

ORDER = {
    "out_trade_no": "20240101000001",
    "total_fee": 101,
    "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
    "notify_url": "https://shop.example.com/payment/wxnotify",
    "spbill_create_ip": "203.0.113.7",
}


@pytest.mark.parametrize("value", ["Tea\x1b[31m", "\x00", "a\x1fb", "\ufffe", "\ud800"])
def test_to_xml_refuses_such_a_value_with_the_protocol_error_type(value):
    with pytest.raises(WxPayRequestInvalid, match="characters") as caught:
        to_xml({"body": value})

    assert isinstance(caught.value, WxPayError)


def test_an_invalid_field_name_is_the_protocol_error_type_too():
    with pytest.raises(WxPayRequestInvalid, match="name"):
        to_xml({"a b": "x"})


def test_unifiedorder_with_such_a_body_raises_wxpay_error_and_sends_nothing(cert_client, http_mock):
    with pytest.raises(WxPayError) as caught:
        cert_client.unified_order(body="Tea\x1b[31m", **ORDER)

    assert isinstance(caught.value, WxPayRequestInvalid)
    assert len(http_mock.calls) == 0


def test_refund_with_such_a_reason_raises_wxpay_error_and_sends_nothing(cert_client, http_mock):
    with pytest.raises(WxPayError):
        cert_client.refund(
            out_trade_no="20240101000001",
            out_refund_no="R20240101000001",
            total_fee=101,
            refund_fee=101,
            refund_desc="broken\x1b[0m",
        )

    assert len(http_mock.calls) == 0
