# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import pickle

import pytest

from wechat.pay_v3 import (
    ERROR_CLASSES,
    BillIntegrityError,
    DecryptError,
    InvalidRequest,
    MalformedNotify,
    NoStatement,
    NotEnough,
    OrderClosed,
    OrderNotExist,
    OrderPaid,
    OutTradeNoUsed,
    RateLimited,
    RequestSignatureRejected,
    ResourceNotExists,
    SignatureHeaderError,
    SignatureProbe,
    StatementCreating,
    SystemBusy,
    TimestampOutOfWindow,
    UnknownSerial,
    WxPayV3ApiError,
    WxPayV3Error,
    WxPayV3RequestInvalid,
    WxPayV3SignatureError,
    WxPayV3Unavailable,
    api_error,
)


@pytest.mark.parametrize(
    "status, code, cls",
    [
        (400, "PARAM_ERROR", InvalidRequest),
        (400, "INVALID_REQUEST", InvalidRequest),
        (400, "APPID_MCHID_NOT_MATCH", InvalidRequest),
        (400, "MCH_NOT_EXISTS", InvalidRequest),
        (403, "NO_AUTH", InvalidRequest),
        (403, "NOAUTH", InvalidRequest),
        (401, "SIGN_ERROR", RequestSignatureRejected),
        (403, "ORDERPAID", OrderPaid),
        (400, "ORDER_PAID", OrderPaid),
        (400, "ORDER_CLOSED", OrderClosed),
        (400, "ORDERCLOSED", OrderClosed),
        (404, "ORDER_NOT_EXIST", OrderNotExist),
        (404, "ORDERNOTEXIST", OrderNotExist),
        (404, "RESOURCE_NOT_EXISTS", ResourceNotExists),
        (403, "OUT_TRADE_NO_USED", OutTradeNoUsed),
        (403, "NOT_ENOUGH", NotEnough),
        (500, "SYSTEM_ERROR", SystemBusy),
        (500, "SYSTEMERROR", SystemBusy),
        (500, "BANK_ERROR", SystemBusy),
        (503, "SERVICE_UNAVAILABLE", SystemBusy),
        (429, "FREQUENCY_LIMITED", RateLimited),
        (429, "RATELIMIT_EXCEEDED", RateLimited),
        (400, "NO_STATEMENT_EXIST", NoStatement),
        (400, "STATEMENT_CREATING", StatementCreating),
    ],
)
def test_codes_map_to_classes_in_either_spelling(status, code, cls):
    """§10.3: spellings differ between page generations; compare without "_"."""
    error = api_error(status, code, "msg", {"field": "x"}, "REQ-1")
    assert type(error) is cls
    assert (error.status, error.code, error.message, error.request_id) == (
        status,
        code,
        "msg",
        "REQ-1",
    )
    assert error.detail == {"field": "x"}


@pytest.mark.parametrize(
    "cls, retryable",
    [
        (SystemBusy, True),
        (RateLimited, True),
        (StatementCreating, True),
        (InvalidRequest, False),
        (RequestSignatureRejected, False),
        (OrderPaid, False),
        (OrderClosed, False),
        (OrderNotExist, False),
        (ResourceNotExists, False),
        (OutTradeNoUsed, False),
        (NotEnough, False),
        (NoStatement, False),
    ],
)
def test_known_codes_decide_retryable_whatever_the_status(cls, retryable):
    assert cls(500, "X").retryable is retryable
    assert cls(400, "X").retryable is retryable


@pytest.mark.parametrize(
    "status, retryable", [(400, False), (403, False), (404, False), (429, True), (500, True)]
)
def test_unknown_codes_are_retryable_by_status(status, retryable):
    error = api_error(status, "SOMETHING_NEW", "")
    assert type(error) is WxPayV3ApiError
    assert error.retryable is retryable


def test_other_families_retryable_flags():
    assert WxPayV3Unavailable("timeout").retryable
    assert BillIntegrityError("sha1").retryable
    for error in (
        WxPayV3SignatureError("bad"),
        UnknownSerial("AB"),
        SignatureProbe("p"),
        DecryptError("d"),
        MalformedNotify("m"),
        WxPayV3RequestInvalid("r"),
    ):
        assert not error.retryable, error


def test_hierarchy_lets_callers_branch_by_family():
    for cls in (SignatureHeaderError, SignatureProbe, TimestampOutOfWindow, UnknownSerial):
        assert issubclass(cls, WxPayV3SignatureError)
    for cls in set(ERROR_CLASSES.values()):
        assert issubclass(cls, WxPayV3ApiError)
    for cls in (WxPayV3ApiError, WxPayV3SignatureError, WxPayV3Unavailable, DecryptError):
        assert issubclass(cls, WxPayV3Error)
    assert issubclass(WxPayV3RequestInvalid, ValueError)


def test_str_shows_status_code_and_a_capped_message():
    error = api_error(400, "PARAM_ERROR", "输入源“/body/amount/total”映射到值字段“总金额”类型出错")
    assert str(error).startswith("WeChat Pay answered HTTP 400 PARAM_ERROR: 输入源")
    flood = api_error(500, "SYSTEM_ERROR", "x" * 10_000)
    assert len(str(flood)) < 200
    assert str(api_error(404, "")) == "WeChat Pay answered HTTP 404 (no code)"


def test_errors_survive_pickling():
    error = pickle.loads(pickle.dumps(api_error(500, "SYSTEM_ERROR", "busy", {"a": 1}, "R")))  # noqa: S301
    assert type(error) is SystemBusy
    assert (error.status, error.code, error.message, error.detail, error.request_id) == (
        500,
        "SYSTEM_ERROR",
        "busy",
        {"a": 1},
        "R",
    )
    serial = pickle.loads(pickle.dumps(UnknownSerial("ABC")))  # noqa: S301
    assert type(serial) is UnknownSerial
    assert serial.serial == "ABC"
