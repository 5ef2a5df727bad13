"""WeChat Pay API v3 through real processes: the phone, gunicorn placing orders with v3, the
simulator signing its answers and notifies and encrypting their resources, admin refunding.

A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.
"""

import json
import time
from io import StringIO

import pytest
import requests
from django.core.management import call_command

from demo.miniprogram import FlowError, MiniProgram
from orders.models import Order, Product
from payments.models import PaymentNotification, Refund
from tests.livestack import ACCOUNT
from tests.wx_v3 import encrypt_resource, new_rsa_key, signed_headers, transaction

pytestmark = pytest.mark.django_db(transaction=True)

Outcome = PaymentNotification.Outcome
V3_REFUNDS = "/v3/refund/domestic/refunds"
V3_QUERY = "/v3/pay/transactions/out-trade-no/{out_trade_no}"
UNKNOWN_SERIAL = "PUB_KEY_ID_0000000000000000000000000099"


def buy(phone: MiniProgram, product: Product, quantity: int = 1) -> dict:
    return phone.order([{"product_id": product.pk, "quantity": quantity}])


def buy_and_pay(phone: MiniProgram, product: Product, quantity: int = 1) -> Order:
    placed = buy(phone, product, quantity)
    phone.request_payment(placed["payment"])
    assert phone.wait_for_status(placed["out_trade_no"])["status"] == "paid"
    return Order.objects.get(out_trade_no=placed["out_trade_no"])


def ledger(**filters) -> list[tuple[str, str, str]]:
    """The ledger's rows, oldest first: (kind, api_version, outcome)."""
    rows = PaymentNotification.objects.filter(**filters).order_by("pk")
    return list(rows.values_list("kind", "api_version", "outcome"))


def wait_for_refund(refund: Refund, timeout: float = 10) -> Refund:
    deadline = time.monotonic() + timeout
    while (refund := Refund.objects.get(pk=refund.pk)).status in ("pending", "processing"):
        assert time.monotonic() < deadline, f"refund still {refund.status}"
        time.sleep(0.1)
    return refund


def requests_seen(sim, path: str) -> int:
    return sim.control("GET", "/sim/stats").json()["requests"].get(path, 0)


# -- 1. a purchase -------------------------------------------------------------------------------


def test_v3_purchase_is_paid_by_the_simulators_signed_encrypted_notify(v3_phone, tea, fresh_sim):
    placed = buy(v3_phone, tea, quantity=2)
    payment = placed["payment"]
    assert payment["signType"] == "RSA"  # §5.2: the merchant's key signs wx.requestPayment
    assert payment["package"].startswith("prepay_id=")
    assert Order.objects.get(out_trade_no=placed["out_trade_no"]).pay_version == "v3"

    paid = v3_phone.request_payment(payment)  # the simulator checks paySign as WeChat does
    final = v3_phone.wait_for_status(placed["out_trade_no"])

    assert final["status"] == "paid"
    assert final["transaction_id"] == paid["transaction_id"]
    trade = fresh_sim.control("GET", f"/sim/trades/{placed['out_trade_no']}").json()
    assert (trade["api"], trade["state"]) == ("v3", "SUCCESS")
    assert trade["payer_openid"] == v3_phone.openid  # the payer is the buyer
    [attempt] = trade["notify_attempts"]
    assert (attempt["status"], attempt["success"]) == (204, True)  # §7.5: SUCCESS is a 204
    assert ledger() == [("payment", "v3", Outcome.PAID)]
    row = PaymentNotification.objects.get()
    assert row.signature_valid is True
    assert row.headers["Wechatpay-Serial"]  # the evidence of who signed it
    assert Product.objects.get(pk=tea.pk).stock == 8


def test_a_tampered_v3_pay_sign_is_refused_by_wechat(v3_phone, tea):
    placed = buy(v3_phone, tea)
    payment = {**placed["payment"], "nonceStr": "changed-by-someone"}

    with pytest.raises(FlowError, match="支付验证签名失败"):
        v3_phone.request_payment(payment)


# -- 2. duplicate delivery -----------------------------------------------------------------------


def test_duplicate_v3_notifies_pay_once(v3_phone, tea, fresh_sim):
    order = buy_and_pay(v3_phone, tea)

    copies = fresh_sim.control(
        "POST", f"/sim/notify/{order.out_trade_no}", {"copies": 4, "concurrent": True}
    ).json()["attempts"]

    assert [(c["status"], c["success"]) for c in copies] == [(204, True)] * 4
    assert sorted(ledger()) == sorted(
        [("payment", "v3", Outcome.PAID)] + [("payment", "v3", Outcome.DUPLICATE)] * 4
    )
    assert Order.objects.get(pk=order.pk).status == "paid"
    assert Product.objects.get(pk=tea.pk).stock == 9


# -- 3. forged notifies --------------------------------------------------------------------------


def _sealed_payment(order: Order, openid: str) -> dict[str, str]:
    """A payment of ``order`` (§7.3), sealed with the merchant's real APIv3 key: everything a
    forger could want, only not signed by WeChat."""
    paid = transaction(
        mchid=ACCOUNT.mch_id,
        appid=ACCOUNT.appid,
        out_trade_no=order.out_trade_no,
        transaction_id="4200002999202601019999999999",
        payer={"openid": openid},
        amount={"total": order.total_fee, "payer_total": order.total_fee, "currency": "CNY"},
    )
    return encrypt_resource(ACCOUNT.apiv3_key, json.dumps(paid).encode())


def _envelope(resource: dict[str, str]) -> bytes:
    return json.dumps(
        {
            "id": "EV-2026010112000012345678",
            "create_time": "2026-01-01T12:00:00+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": resource,
        },
        separators=(",", ":"),
    ).encode()


def test_forged_notifies_posted_to_the_shop_are_refused_and_change_nothing(v3_shop, v3_phone, tea):
    genuine_order = buy_and_pay(v3_phone, tea)
    genuine = PaymentNotification.objects.get()  # the simulator's notify, as received
    trusted_serial = genuine.headers["Wechatpay-Serial"]
    target = Order.objects.get(out_trade_no=buy(v3_phone, tea)["out_trade_no"])
    forger_key, now = new_rsa_key(), int(time.time())
    sealed = _sealed_payment(target, v3_phone.openid)
    forged = _envelope(sealed)
    # WeChat's genuine notify, byte for byte, but for its resource's ciphertext and nonce:
    # the target's payment sealed in their place.
    resource = json.loads(genuine.raw_body)["resource"]
    spliced = (
        genuine.raw_body.replace(resource["ciphertext"], sealed["ciphertext"])
        .replace(f'"{resource["nonce"]}"', f'"{sealed["nonce"]}"')
        .encode()
    )
    genuine_headers = {k: v for k, v in genuine.headers.items() if k.startswith("Wechatpay-")}
    attempts = {
        "signed with another key": (
            signed_headers(forger_key, trusted_serial, forged, timestamp=now),
            forged,
        ),
        "stale timestamp": (
            signed_headers(forger_key, trusted_serial, forged, timestamp=now - 600),
            forged,
        ),
        "serial nobody issued": (
            signed_headers(forger_key, UNKNOWN_SERIAL, forged, timestamp=now),
            forged,
        ),
        "tampered ciphertext": (genuine_headers, spliced),
    }

    answers = {}
    for name, (headers, body) in attempts.items():
        response = requests.post(
            f"{v3_shop.url}/payment/v3/wxnotify",
            data=body,
            headers={**headers, "Content-Type": "application/json"},
            timeout=10,
        )
        row = PaymentNotification.objects.latest("pk")
        answers[name] = (response.status_code, response.json()["code"], row.outcome, row.detail)

    # §3: the timestamp window first, then the serial's key, then the signature over the body.
    assert {name: answer[:3] for name, answer in answers.items()} == {
        name: (401, "FAIL", Outcome.REJECTED) for name in attempts
    }
    assert "old" in answers["stale timestamp"][3]
    assert "does not verify" in answers["signed with another key"][3]
    assert "does not verify" in answers["tampered ciphertext"][3]
    forgeries = PaymentNotification.objects.exclude(pk=genuine.pk)
    assert {(r.api_version, r.signature_valid) for r in forgeries} == {("v3", False)}
    assert forgeries.count() == 4  # each ledgered, body and headers kept
    target.refresh_from_db()
    assert (target.status, target.transaction_id) == ("unpaid", None)
    assert ledger(outcome=Outcome.PAID) == [("payment", "v3", Outcome.PAID)]
    assert Order.objects.get(pk=genuine_order.pk).status == "paid"


@pytest.mark.parametrize("fault", ["bad_sign", "stale_timestamp", "wrong_serial"])
def test_a_forged_first_delivery_is_refused_and_wechats_retry_pays_once(
    v3_phone, tea, fresh_sim, fault
):
    """The simulator spoils its own first attempt (a signature that does not verify, one
    made 10 minutes ago, a serial nobody issued); the shop refuses it, the retry pays."""
    fresh_sim.control("POST", "/sim/faults", {"notify": fault})

    order = buy_and_pay(v3_phone, tea)

    attempts = fresh_sim.control("GET", f"/sim/trades/{order.out_trade_no}").json()[
        "notify_attempts"
    ]
    assert [(a["status"], a["success"]) for a in attempts] == [(401, False), (204, True)]
    assert ledger() == [("payment", "v3", Outcome.REJECTED), ("payment", "v3", Outcome.PAID)]
    assert Product.objects.get(pk=tea.pk).stock == 9


# -- 4. refunds from admin -----------------------------------------------------------------------


def test_partial_refunds_from_admin_go_through_v3_up_to_the_total(
    v3_shop, v3_phone, tea, fresh_sim, shop_admin
):
    order = buy_and_pay(v3_phone, tea)
    admin = shop_admin(v3_shop)

    page = admin.refund(order, amount="15.00", reason="One tin arrived dented")

    assert "accepted by WeChat" in page
    first = Refund.objects.get(order=order)
    assert (first.refund_fee, first.reason) == (1500, "One tin arrived dented")
    assert wait_for_refund(first).status == "success"  # by WeChat's v3 refund notify
    assert Order.objects.get(pk=order.pk).status == "paid"

    admin.refund(order)  # the page's default: all that is left

    second = Refund.objects.exclude(pk=first.pk).get(order=order)
    assert second.refund_fee == 3000
    assert wait_for_refund(second).status == "success"
    assert v3_phone.wait_for_status(order.out_trade_no, "refunded")["status"] == "refunded"
    trade = fresh_sim.control("GET", f"/sim/trades/{order.out_trade_no}").json()
    assert trade["refunded_fee"] == 4500
    assert [(r["api"], r["status"]) for r in trade["refunds"]] == [("v3", "SUCCESS")] * 2
    assert [r["notify_attempts"][-1]["status"] for r in trade["refunds"]] == [204, 204]
    assert requests_seen(fresh_sim, V3_REFUNDS) == 2
    assert requests_seen(fresh_sim, "/secapi/pay/refund") == 0
    assert ledger(kind="refund") == [("refund", "v3", Outcome.REFUND_RECORDED)] * 2


# -- 5. certificate mode -------------------------------------------------------------------------


def test_a_shop_without_the_public_key_pays_with_downloaded_platform_certificates(
    certificate_shop, certificate_sim, tea
):
    assert not certificate_shop.env()["WECHAT_PAY_PUBLIC_KEY_PATH"]
    phone = MiniProgram(certificate_shop.url, certificate_sim)
    phone.login()

    order = buy_and_pay(phone, tea)

    assert requests_seen(certificate_sim, "/v3/certificates") >= 1  # §3.4
    trade = certificate_sim.control("GET", f"/sim/trades/{order.out_trade_no}").json()
    assert [a["status"] for a in trade["notify_attempts"]] == [204]
    assert ledger() == [("payment", "v3", Outcome.PAID)]
    serial = PaymentNotification.objects.get().headers["Wechatpay-Serial"]
    assert serial == certificate_sim.v3["platform_serial"]  # signed with the certificate


# -- 7. a lost notify ----------------------------------------------------------------------------


def test_a_dropped_v3_notify_is_recovered_by_reconcile_orders(
    v3_phone, tea, fresh_sim, v3_pay_settings
):
    fresh_sim.control("POST", "/sim/faults", {"notify": "drop", "count": 1})
    placed = buy(v3_phone, tea)
    v3_phone.request_payment(placed["payment"])
    assert v3_phone.wait_for_status(placed["out_trade_no"], timeout=1)["status"] == "unpaid"

    out = StringIO()
    call_command("reconcile_orders", "--min-age-minutes", "0", stdout=out)

    assert "payment recorded (paid)" in out.getvalue()
    assert v3_phone.wait_for_status(placed["out_trade_no"], timeout=1)["status"] == "paid"
    assert requests_seen(fresh_sim, V3_QUERY) >= 1  # asked through v3's query (§6.1)
    assert requests_seen(fresh_sim, "/pay/orderquery") == 0
    assert not PaymentNotification.objects.exists()
