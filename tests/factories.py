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


# -- trade bills (docs/protocol/wechat-pay-v2.md §14.4-§14.6) -----------------------------------

BILL_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
BILL_SUMMARY_HEADER = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def bill_payment(out_trade_no: str, transaction_id: str, fen: int,
                 when: str = "2026-11-27 10:30:15") -> tuple[str, int, int]:
    """A payment row of a bill (§14.5), with what it adds to the summary."""
    values = [when, settings.WECHAT_APPID, settings.WECHAT_MCH_ID, "0", "", transaction_id,
              out_trade_no, "o-test-openid", "JSAPI", "SUCCESS", "CMC", "CNY", _yuan(fen),
              "0.00", "0", "0", "0.00", "0.00", "", "", "Tea", "", "0.00000", "0.60%",
              _yuan(fen), "0.00", ""]
    return ",".join("`" + v for v in values), fen, 0


def bill_refund(out_trade_no: str, transaction_id: str, out_refund_no: str, fen: int,
                status: str = "SUCCESS", when: str = "2026-11-27 12:00:05") -> tuple[str, int, int]:
    """A refund row of a bill (§14.5, §14.7)."""
    values = [when, settings.WECHAT_APPID, settings.WECHAT_MCH_ID, "0", "", transaction_id,
              out_trade_no, "o-test-openid", "JSAPI", "REFUND", "CMC", "CNY", "0.00", "0.00",
              refund_id_for(out_refund_no), out_refund_no, _yuan(fen), "0.00", "ORIGINAL", status,
              "Tea", "", "0.00000", "0.60%", "0.00", _yuan(fen), ""]
    return ",".join("`" + v for v in values), 0, fen


def trade_bill(*rows: tuple[str, int, int] | str, summary: str | None = None) -> bytes:
    """A bill file as WeChat serves it: BOM, CRLF, header, rows, the summary of the rows
    (or ``summary`` as given). A plain string row is put in as it is (an unreadable line)."""
    lines = [r if isinstance(r, str) else r[0] for r in rows]
    paid = sum(r[1] for r in rows if not isinstance(r, str))
    refunded = sum(r[2] for r in rows if not isinstance(r, str))
    summary = summary or ",".join(
        "`" + v
        for v in (str(len(rows)), _yuan(paid), _yuan(refunded), "0.00", "0.00000", _yuan(paid),
                  _yuan(refunded))
    )
    text = "".join(line + "\r\n" for line in [BILL_HEADER, *lines, BILL_SUMMARY_HEADER, summary])
    return b"\xef\xbb\xbf" + text.encode("utf-8")


NO_BILL = (
    b"<xml><return_code><![CDATA[FAIL]]></return_code>"
    b"<return_msg><![CDATA[No Bill Exist]]></return_msg><error_code>20002</error_code></xml>"
)


# -- orderquery (docs/protocol/wechat-pay-v2.md §6.1) ------------------------------------------


def orderquery_paid(order: Order, **overrides) -> dict:
    """WeChat's orderquery answer for ``order`` paid (the fields FakeWxPay adds)."""
    fields = {
        "trade_state": "SUCCESS",
        "out_trade_no": order.out_trade_no,
        "transaction_id": TRANSACTION_ID,
        "total_fee": str(order.total_fee),
        "openid": order.openid,
        "time_end": "20261127103015",
        "trade_type": "JSAPI",
    }
    fields.update(overrides)
    return fields
