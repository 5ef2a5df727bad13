"""Builders for tests: shoppers, orders, WeChat notifies and refunds (one kit, STYLE).

Plain functions rather than factory_boy: each builds exactly what the shop stores or what
WeChat sends, signed with the reference signer in ``tests/wx.py``. Fixtures that use them
live in ``conftest.py``; no test module imports another test module.
"""

import itertools
from datetime import timedelta

from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tokens import token_issue
from orders.models import Order, OrderItem, Product
from orders.services import DeliveryAddress
from payments.models import Refund
from payments.refunds import refund_create, refund_submit
from tests.wx import refund_id_for, refund_notify_body, signed, wx_xml

_openids = itertools.count(1)

NOTIFY_URL = "/payment/wxnotify"
REFUND_NOTIFY_URL = "/payment/refundnotify"
# Exactly what the shop answers WeChat when a notify is recorded.
NOTIFY_SUCCESS = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
    b"<return_msg><![CDATA[OK]]></return_msg></xml>"
)
TRANSACTION_ID = "4200000483202001042069747825"


# -- people -------------------------------------------------------------------------------------


def make_shopper(**fields) -> User:
    n = next(_openids)
    # Every shopper has a session_key, so any page or answer that leaked one would show it.
    defaults = {
        "openid": f"o-test-openid-{n:04d}",
        "username": f"wx_test_{n}",
        "session_key": SESSION_KEY,
    }
    defaults.update(fields)
    return User.objects.create(**defaults)


def client_for(user: User) -> APIClient:
    """An API client that sends the user's bearer token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=user)}")
    return client


# A shopper's session_key as WeChat hands it out: no staff page may ever show it.
SESSION_KEY = "HyVFkGl5F5OQWJZZaNzBBg=="


def get_ok(client: Client, url: str) -> str:
    """An admin page that renders (200) and shows no secret; its text."""
    response = client.get(url)
    assert response.status_code == 200, url
    text = response.content.decode()
    for secret in (SESSION_KEY, settings.WECHAT_MCH_KEY, settings.WECHAT_APP_SECRET):
        assert secret not in text, url
    return text


def staff_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# -- orders -------------------------------------------------------------------------------------


def delivery_address() -> dict[str, str]:
    """A delivery address as wx.chooseAddress hands it over (snake_case keys), as
    ``POST /payment/order`` takes it: a new order of products that ship needs one."""
    return {
        "user_name": "张三",
        "tel_number": "13812345678",
        "province_name": "广东省",
        "city_name": "广州市",
        "county_name": "海珠区",
        "detail_info": "新港中路397号",
        "postal_code": "510000",
    }


# The same, for calling ``order_create`` directly.
DELIVERY = DeliveryAddress(**delivery_address())


def make_order(user: User, products: dict[str, Product], n: int = 0, **fields) -> Order:
    """An unpaid ¥45.00 order of one tea, created ``n`` minutes ago (no stock taken)."""
    now = timezone.now() - timedelta(minutes=n)
    defaults = {
        "out_trade_no": f"T{user.pk:04d}{n:027d}",
        "user": user,
        "openid": user.openid,
        "body": "Tea",
        "total_fee": 4500,
        "spbill_create_ip": "127.0.0.1",
        "created_at": now,
        "expires_at": now + timedelta(minutes=30),
    }
    defaults.update(fields)
    order = Order.objects.create(**defaults)
    OrderItem.objects.create(
        order=order, product=products["tea"], product_name="Tea", unit_price=4500, quantity=1
    )
    return order


def make_paid_order(user: User, products: dict[str, Product], **fields) -> Order:
    """An order paid the way WeChat pays one: through a signed notify."""
    order = make_order(user, products, **fields)
    assert post_notify(notify_body(order)).content == NOTIFY_SUCCESS
    return Order.objects.get(pk=order.pk)


# -- payment notifies (docs/protocol/wechat-pay-v2.md §5) -----------------------------------


def notify_fields(order: Order, **overrides) -> dict:
    """A payment notify as WeChat sends it, unsigned."""
    fields = {
        "return_code": "SUCCESS",
        "appid": settings.WECHAT_APPID,
        "mch_id": settings.WECHAT_MCH_ID,
        "nonce_str": "1732664410123",
        "result_code": "SUCCESS",
        "openid": order.openid,
        "is_subscribe": "N",
        "trade_type": "JSAPI",
        "bank_type": "CMC",
        "total_fee": order.total_fee,
        "fee_type": "CNY",
        "cash_fee": order.total_fee,
        "transaction_id": TRANSACTION_ID,
        "out_trade_no": order.out_trade_no,
        "time_end": "20261127103015",
    }
    fields.update(overrides)
    return fields


def notify_body(order: Order, sign_type: str = "MD5", key: str | None = None, **overrides) -> bytes:
    """A signed payment notify body for ``order``."""
    return wx_xml(signed(notify_fields(order, **overrides), key=key, sign_type=sign_type))


def post_notify(body: bytes, client: Client | None = None, **extra):
    return (client or Client()).post(NOTIFY_URL, data=body, content_type="text/xml", **extra)


# -- refunds ------------------------------------------------------------------------------------


def make_refund(order: Order, fee: int) -> Refund:
    """refund_create then refund_submit, as the admin does (WeChat mocked by the caller)."""
    return refund_submit(refund=refund_create(order=order, refund_fee=fee, reason="test").refund)


def refund_info(refund: Refund, status: str = "SUCCESS", **overrides) -> dict:
    """The decrypted req_info of a refund notify."""
    info = {
        "transaction_id": TRANSACTION_ID,
        "out_trade_no": refund.order.out_trade_no,
        "refund_id": refund_id_for(refund.out_refund_no),
        "out_refund_no": refund.out_refund_no,
        "total_fee": refund.order.total_fee,
        "refund_fee": refund.refund_fee,
        "settlement_refund_fee": refund.refund_fee,
        "refund_status": status,
        "success_time": "2026-11-27 12:00:05",
        "refund_recv_accout": "支付用户零钱",
        "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
        "refund_request_source": "API",
    }
    info.update(overrides)
    return info


def post_refund_notify(body: bytes):
    return Client().post(REFUND_NOTIFY_URL, data=body, content_type="text/xml")


def notify_refund(refund: Refund, status: str = "SUCCESS", **overrides):
    """WeChat's refund notify for ``refund``, posted to the shop."""
    return post_refund_notify(refund_notify_body(refund_info(refund, status, **overrides)))


def reload(obj):
    return type(obj).objects.get(pk=obj.pk)


def is_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"
