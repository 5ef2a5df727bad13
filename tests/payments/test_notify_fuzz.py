"""Fuzzing the notify endpoints with a bounded budget: whatever arrives, the answer is
WeChat's XML (SUCCESS only for a genuine payment), a ledger row is written, never a 500,
and the order is paid only by a notify that verifies."""

import pytest
from django.conf import settings as settings_
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orders.models import Order
from payments.models import PaymentNotification
from tests.factories import notify_fields
from tests.wx import signed, wx_sign, wx_xml

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FAIL = b"<return_code><![CDATA[FAIL]]></return_code>"
SUCCESS = b"<return_code><![CDATA[SUCCESS]]></return_code>"


def deliver(path: str, body: bytes):
    before = PaymentNotification.objects.count()
    response = Client().post(path, data=body, content_type="text/xml")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    assert FAIL in response.content or SUCCESS in response.content
    assert PaymentNotification.objects.count() == before + 1  # nothing goes unrecorded
    return response


# Mutations of a genuine notify: drop, change or add fields, keep or redo the signature.
mutations = st.lists(
    st.tuples(
        st.sampled_from(["drop", "set", "add"]),
        st.sampled_from(
            ["total_fee", "out_trade_no", "appid", "mch_id", "sign", "result_code",
             "transaction_id", "time_end", "openid", "return_code", "sign_type", "cash_fee"]
        ),
        st.one_of(st.text(max_size=20), st.integers(-(2**40), 2**40).map(str)),
    ),
    min_size=1,
    max_size=4,
)  # fmt: skip


CRITICAL = ("return_code", "result_code", "appid", "mch_id", "out_trade_no", "total_fee", "openid")


def verifies(fields: dict) -> bool:
    """The handler's rule, restated: the declared sign type if valid, else the order's."""
    sign_type = fields.get("sign_type")
    if sign_type not in ("MD5", "HMAC-SHA256"):
        sign_type = "MD5"
    return fields.get("sign") == wx_sign(fields, settings_.WECHAT_MCH_KEY, sign_type)


@FUZZ
@given(mutations=mutations, resign=st.booleans())
def test_mutated_notifies_never_break_the_handler_nor_pay_wrongly(order, mutations, resign):
    Order.objects.filter(pk=order.pk).update(status="unpaid", transaction_id=None, paid_at=None)
    fields = {k: str(v) for k, v in signed(notify_fields(order)).items()}
    for action, name, value in mutations:
        if action == "drop":
            fields.pop(name, None)
        else:
            fields[name if action == "set" else f"x_{name}"] = value.replace("]]>", "")
    if resign:
        declared = fields.get("sign_type")
        sign_type = declared if declared in ("MD5", "HMAC-SHA256") else "MD5"
        fields = {k: str(v) for k, v in signed(fields, sign_type=sign_type).items()}

    deliver("/payment/wxnotify", wx_xml(fields))

    if Order.objects.get(pk=order.pk).status == "paid":
        event("paid")
        genuine = {k: str(v) for k, v in notify_fields(order).items()}
        assert verifies(fields)
        assert all(fields.get(name) == genuine[name] for name in CRITICAL)


@FUZZ
@given(body=st.binary(max_size=2000))
def test_random_bytes_get_fail_and_a_ledger_row(body):
    assert FAIL in deliver("/payment/wxnotify", body).content


@FUZZ
@given(body=st.binary(max_size=2000))
def test_random_bytes_to_the_refund_notify_get_fail_and_a_ledger_row(body):
    assert FAIL in deliver("/payment/refundnotify", body).content
