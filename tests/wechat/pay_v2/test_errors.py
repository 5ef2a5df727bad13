import pickle

import pytest

from wechat.pay_v2.errors import (
    ERROR_CLASSES,
    InvalidRequest,
    OrderClosed,
    OrderNotExist,
    OrderPaid,
    OutTradeNoUsed,
    SystemBusy,
    WxPayBusinessError,
    WxPayError,
    WxPayProtocolError,
    business_error,
)


@pytest.mark.parametrize(
    ("err_code", "cls", "retryable"),
    [
        ("ORDERPAID", OrderPaid, False),
        ("ORDERCLOSED", OrderClosed, False),
        ("ORDERNOTEXIST", OrderNotExist, False),
        ("OUT_TRADE_NO_USED", OutTradeNoUsed, False),
        ("SYSTEMERROR", SystemBusy, True),
        ("BIZERR_NEED_RETRY", SystemBusy, True),
        ("INVALID_REQUEST", InvalidRequest, False),
        ("PARAM_ERROR", InvalidRequest, False),
        ("LACK_PARAMS", InvalidRequest, False),
    ],
)
def test_business_error_is_typed_by_err_code(err_code, cls, retryable):
    error = business_error(err_code, "说明")
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.err_code == err_code
    assert error.err_code_des == "说明"
    assert ERROR_CLASSES[err_code] is cls


def test_unknown_err_code_gives_plain_business_error():
    error = business_error("NOAUTH", "商户无此接口权限")
    assert type(error) is WxPayBusinessError
    assert not error.retryable
    assert isinstance(error, WxPayError)


def test_business_error_text_names_the_err_code():
    assert str(business_error("ORDERPAID", "商户订单已支付")) == (
        "WeChat Pay business error ORDERPAID: 商户订单已支付"
    )
    assert str(business_error("SYSTEMERROR")) == "WeChat Pay business error SYSTEMERROR"


def test_long_wechat_texts_are_shortened():
    assert len(str(business_error("ERROR", "x" * 5000))) < 200
    assert len(str(WxPayProtocolError("x" * 5000))) < 200


def test_protocol_error_keeps_return_msg():
    error = WxPayProtocolError("签名错误")
    assert error.return_msg == "签名错误"
    assert "return_code=FAIL" in str(error)
    assert "签名错误" in str(error)


def test_errors_survive_pickling():
    # Pickling round trips our own objects only (task queues do this with raised errors).
    error = pickle.loads(pickle.dumps(business_error("SYSTEMERROR", "busy")))  # noqa: S301
    assert type(error) is SystemBusy
    assert (error.err_code, error.err_code_des) == ("SYSTEMERROR", "busy")
    protocol_error = pickle.loads(pickle.dumps(WxPayProtocolError("bad")))  # noqa: S301
    assert protocol_error.return_msg == "bad"
