"""Hostile input to the v3 notify endpoints: forged, stale, probing, unsigned, truncated,
oversized, undecryptable. Each is refused with 401 (the signature did not check out) or
400 (anything else), kept in the ledger, and never a 500 (docs/INVARIANTS.md §6.4, §9)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import base64
import json
import logging
import time
from datetime import UTC, datetime

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders.models import Order
from payments.models import PaymentNotification
from tests.factories import make_order, make_shopper, reload
from tests.wx_v3 import (
    PLATFORM_SERIAL,
    PUBLIC_KEY_ID,
    V3_NOTIFY_URL,
    V3_REFUND_NOTIFY_URL,
    FakeCertificates,
    notify_body,
    post_v3,
    shop_transaction,
    signed_headers,
    signed_notify,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pay_v3")]

Outcome = PaymentNotification.Outcome
BOTH = pytest.mark.parametrize("url", [V3_NOTIFY_URL, V3_REFUND_NOTIFY_URL])
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def now() -> int:
    return int(time.time())


def v3_order(products) -> Order:
    return make_order(make_shopper(), products, pay_version="v3")


def paid_notify(order: Order, key, **changes) -> tuple[dict[str, str], bytes]:
    return signed_notify(key, shop_transaction(order, **changes), timestamp=now())


def refused(response, status: int, outcome: str, signature_valid: bool | None):
    """The answer is the refusal asked for, and the notify is in the ledger saying so."""
    assert (response.status_code, response.json()) == (
        status,
        {"code": "FAIL", "message": outcome},
    ), response.content
    row = PaymentNotification.objects.get()
    assert (row.api_version, row.outcome, row.signature_valid, row.replied) == (
        "v3",
        outcome,
        signature_valid,
        "FAIL",
    )
    return row


def resigned(key, body: bytes) -> dict[str, str]:
    """WeChat's signature over ``body`` as it is: what remains is the body's own fault."""
    return signed_headers(key, PUBLIC_KEY_ID, body, timestamp=now())


class TestNotAuthentic:
    @BOTH
    def test_a_signature_by_another_key_is_401(self, url, products, platform):
        headers, body = paid_notify(v3_order(products), platform.key)  # under PUBLIC_KEY_ID

        row = refused(post_v3(url, headers, body), 401, Outcome.REJECTED, False)
        assert row.raw_body == body.decode()

    def test_a_body_changed_after_signing_is_401(self, products, wechat_key):
        order = v3_order(products)
        headers, body = paid_notify(order, wechat_key)

        changed = body.replace(b"EV-", b"EV-0")

        refused(post_v3(V3_NOTIFY_URL, headers, changed), 401, Outcome.REJECTED, False)
        assert reload(order).status == Order.Status.UNPAID

    def test_a_re_serialized_body_does_not_verify(self, products, wechat_key):
        # What DRF's request.data or json.dumps(json.loads(...)) would hand over (§12).
        headers, body = paid_notify(v3_order(products), wechat_key)
        compact = json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":"))

        refused(post_v3(V3_NOTIFY_URL, headers, compact.encode()), 401, "rejected", False)

    @BOTH
    def test_an_unknown_public_key_id_is_401_without_asking_wechat(
        self, url, products, wechat_key, http_mock
    ):
        certificates = FakeCertificates(http_mock, (wechat_key, PUBLIC_KEY_ID), [])
        order = v3_order(products)
        _, body = paid_notify(order, wechat_key)
        headers = signed_headers(
            wechat_key, "PUB_KEY_ID_0000000000000000000000000099", body, timestamp=now()
        )

        row = refused(post_v3(url, headers, body), 401, Outcome.REJECTED, False)
        assert "PUB_KEY_ID_0000000000000000000000000099" in row.detail
        assert certificates.calls == 0

    @BOTH
    def test_an_unknown_certificate_serial_is_401_when_wechat_has_none(
        self, url, products, platform, http_mock
    ):
        certificates = FakeCertificates(http_mock, (platform.key, PLATFORM_SERIAL), [])
        certificates.failure = (404, "RESOURCE_NOT_EXISTS")  # public-key merchants (§3.3)
        headers, body = signed_notify(
            platform.key,
            shop_transaction(v3_order(products)),
            timestamp=now(),
            serial=PLATFORM_SERIAL,
        )

        refused(post_v3(url, headers, body), 401, Outcome.REJECTED, False)
        assert certificates.calls == 1

    @BOTH
    def test_a_signature_probe_is_401(self, url, products, wechat_key):
        headers, body = paid_notify(v3_order(products), wechat_key)
        probe = base64.b64encode(b"probe").decode()
        headers["Wechatpay-Signature"] = f"WECHATPAY/SIGNTEST/{probe}"

        row = refused(post_v3(url, headers, body), 401, Outcome.REJECTED, False)
        assert "probe" in row.detail

    @BOTH
    @pytest.mark.parametrize(
        "header",
        ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"],
    )
    def test_a_missing_signature_header_is_401(self, url, header, products, wechat_key):
        headers, body = paid_notify(v3_order(products), wechat_key)
        del headers[header]

        row = refused(post_v3(url, headers, body), 401, Outcome.REJECTED, False)
        assert header.lower() in row.detail.lower()

    @BOTH
    def test_no_headers_at_all_is_401(self, url, products, wechat_key):
        _, body = paid_notify(v3_order(products), wechat_key)

        refused(post_v3(url, {}, body), 401, Outcome.REJECTED, False)

    @pytest.mark.parametrize(
        "header, value",
        [
            ("Wechatpay-Timestamp", "tomorrow"),
            ("Wechatpay-Timestamp", "9" * 400),
            ("Wechatpay-Signature", "not base64!"),
            ("Wechatpay-Signature", "A" * 10_000),
            ("Wechatpay-Serial", "PUB KEY"),
            ("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA1024"),
        ],
    )
    def test_a_garbled_signature_header_is_401_and_kept_bounded(
        self, header, value, products, wechat_key
    ):
        headers, body = paid_notify(v3_order(products), wechat_key)
        headers[header] = value

        row = refused(post_v3(V3_NOTIFY_URL, headers, body), 401, Outcome.REJECTED, False)
        assert row.headers[header] == value[:4096]


class TestTimeWindow:
    """|now - Wechatpay-Timestamp| must stay under 5 minutes (§3.6), our clock held still."""

    @pytest.mark.parametrize(
        "age, status", [(299, 204), (-299, 204), (300, 401), (-300, 401), (86_400, 401)]
    )
    def test_the_window_is_five_minutes_either_way(
        self, age, status, products, wechat_key, monkeypatch
    ):
        moment = datetime(2026, 11, 27, 2, 30, 15, tzinfo=UTC)
        monkeypatch.setattr(timezone, "now", lambda: moment)
        order = v3_order(products)
        headers, body = signed_notify(
            wechat_key, shop_transaction(order), timestamp=int(moment.timestamp()) - age
        )

        response = post_v3(V3_NOTIFY_URL, headers, body)

        assert response.status_code == status
        row = PaymentNotification.objects.get()
        if status == 401:
            assert (row.outcome, row.signature_valid) == (Outcome.REJECTED, False)
            assert "Wechatpay-Timestamp" in row.detail
            assert reload(order).status == Order.Status.UNPAID
        else:
            assert reload(order).status == Order.Status.PAID


class TestUnreadable:
    @BOTH
    @pytest.mark.parametrize(
        "body", [b"", b"{not json", b"[1, 2]", b'"text"', b'{"id": "EV-1"}', b"\xff\xfe{}"]
    )
    def test_a_signed_body_that_is_no_notify_is_400_and_kept(self, url, body, wechat_key):
        row = refused(post_v3(url, resigned(wechat_key, body), body), 400, "malformed", True)
        assert row.raw_body == body.decode("utf-8", "backslashreplace")

    @BOTH
    def test_an_unsigned_body_that_is_no_notify_is_401(self, url):
        refused(post_v3(url, {}, b"{not json"), 401, Outcome.REJECTED, False)

    @BOTH
    @pytest.mark.parametrize("size", [64 * 1024 + 1, 5 * 1024 * 1024])
    def test_an_oversized_body_is_400_and_only_its_start_kept(
        self, url, size, products, wechat_key
    ):
        _, body = paid_notify(v3_order(products), wechat_key)
        body = body[:-2] + b', "pad": "' + b"x" * size + b'"}'

        row = refused(post_v3(url, resigned(wechat_key, body), body), 400, "malformed", None)
        assert (row.body_truncated, row.raw_body) == (
            True,
            body[:4096].decode("utf-8", "backslashreplace"),
        )


def sealed_body(order: Order, key, tamper) -> bytes:
    """A genuine notify whose resource ``tamper`` changed before WeChat signed it."""
    _, body = signed_notify(key, shop_transaction(order), timestamp=now())
    envelope = json.loads(body)
    tamper(envelope["resource"])
    return notify_body(envelope["resource"])


def flip_ciphertext(resource: dict) -> None:
    data = bytearray(base64.b64decode(resource["ciphertext"]))
    data[5] ^= 1
    resource["ciphertext"] = base64.b64encode(bytes(data)).decode()


class TestUndecryptable:
    """Signed by WeChat, yet the resource does not open (§7.2): 400, and an alert, since
    the APIv3 key set here is most likely not the merchant platform's any more."""

    @pytest.mark.parametrize(
        "tamper",
        [
            flip_ciphertext,
            lambda r: r.update(associated_data="refund"),
            lambda r: r.update(associated_data=""),
            lambda r: r.update(nonce="000000000000"),
            lambda r: r.update(nonce="short"),
            lambda r: r.update(ciphertext="not base64!"),
            lambda r: r.update(algorithm="AEAD_AES_128_GCM"),
            lambda r: r.pop("ciphertext"),
        ],
    )
    def test_a_tampered_resource_is_400_and_alerts(
        self, tamper, products, wechat_key, caplog
    ):
        order = v3_order(products)
        body = sealed_body(order, wechat_key, tamper)

        with caplog.at_level(logging.ERROR, logger="payments.notify"):
            row = refused(
                post_v3(V3_NOTIFY_URL, resigned(wechat_key, body), body), 400, "malformed", True
            )

        assert row.detail.startswith("Did not decrypt")
        assert "WECHAT_API_V3_KEY" in caplog.text
        assert reload(order).status == Order.Status.UNPAID

    @BOTH
    def test_a_resource_under_another_apiv3_key_is_400(self, url, products, wechat_key):
        order = v3_order(products)
        headers, body = signed_notify(
            wechat_key,
            shop_transaction(order),
            timestamp=now(),
            apiv3_key="Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4",
        )

        refused(post_v3(url, headers, body), 400, "malformed", True)

    def test_tampering_without_wechats_signature_is_401(self, products, wechat_key):
        headers, _ = paid_notify(v3_order(products), wechat_key)
        body = sealed_body(v3_order(products), wechat_key, flip_ciphertext)

        refused(post_v3(V3_NOTIFY_URL, headers, body), 401, Outcome.REJECTED, False)


class TestTextNoColumnTakes:
    """JSON can carry a NUL, which no text column or parameter takes: a signed notify with
    one is refused and recorded, never a 500 (WeChat would retry it for 24 hours)."""

    def test_in_the_order_number_it_names_no_order(self, products, wechat_key):
        order = v3_order(products)

        response = post_v3(V3_NOTIFY_URL, *paid_notify(order, wechat_key, out_trade_no="A\x00B"))

        row = refused(response, 400, Outcome.UNKNOWN_ORDER, True)
        assert row.out_trade_no == "A\\x00B"
        assert reload(order).status == Order.Status.UNPAID

    @pytest.mark.parametrize(
        "changes", [{"transaction_id": "4200\x00"}, {"payer": {"openid": "o\x00"}}]
    )
    def test_in_the_payment_it_is_malformed(self, products, wechat_key, changes):
        order = v3_order(products)

        response = post_v3(V3_NOTIFY_URL, *paid_notify(order, wechat_key, **changes))

        refused(response, 400, Outcome.MALFORMED, True)
        assert reload(order).status == Order.Status.UNPAID

    def test_a_lone_surrogate_is_kept_escaped_and_names_no_order(self, products, wechat_key):
        """JSON's \\ud800 decodes to a lone surrogate, which no UTF-8 column takes."""
        order = v3_order(products)

        response = post_v3(V3_NOTIFY_URL, *paid_notify(order, wechat_key, out_trade_no="A\ud800B"))

        row = refused(response, 400, Outcome.UNKNOWN_ORDER, True)
        assert row.out_trade_no == "A\\ud800B"
        assert reload(order).status == Order.Status.UNPAID

    @pytest.mark.parametrize(
        "changes", [{"transaction_id": "4200\udfff"}, {"payer": {"openid": "o\ud800"}}]
    )
    def test_a_lone_surrogate_in_the_payment_is_malformed(self, products, wechat_key, changes):
        order = v3_order(products)

        response = post_v3(V3_NOTIFY_URL, *paid_notify(order, wechat_key, **changes))

        refused(response, 400, Outcome.MALFORMED, True)
        assert reload(order).status == Order.Status.UNPAID


# -- whatever arrives ------------------------------------------------------------------------

header_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["WECHATPAY/SIGNTEST/AAAA", PUBLIC_KEY_ID, "", "0", "-1", "9" * 20]),
)
headers_strategy = st.dictionaries(
    st.sampled_from(
        [
            "Wechatpay-Timestamp",
            "Wechatpay-Nonce",
            "Wechatpay-Signature",
            "Wechatpay-Serial",
            "Wechatpay-Signature-Type",
            "Wechatpay-Extra",
        ]
    ),
    header_values.map(lambda v: v.replace("\r", "").replace("\n", "")),
)


@FUZZ
@given(
    url=st.sampled_from([V3_NOTIFY_URL, V3_REFUND_NOTIFY_URL]),
    headers=headers_strategy,
    body=st.binary(max_size=2000),
)
def test_anything_gets_a_refusal_and_a_ledger_row_never_a_500(url, headers, body):
    before = PaymentNotification.objects.count()

    response = post_v3(url, headers, body)

    assert response.status_code in (400, 401)
    assert response.json()["code"] == "FAIL"
    assert PaymentNotification.objects.count() == before + 1


@FUZZ
@given(
    changes=st.fixed_dictionaries(
        {},
        optional={
            "appid": st.sampled_from(["wx0000000000000000", ""]),
            "mchid": st.sampled_from(["1900000002", ""]),
            "trade_state": st.sampled_from(["NOTPAY", "CLOSED", "REFUND", "", "SUCCESS"]),
            "transaction_id": st.text(max_size=40),
            "amount": st.fixed_dictionaries(
                {"total": st.integers(-5, 2**32)}, optional={"currency": st.just("CNY")}
            ),
            "payer": st.fixed_dictionaries({"openid": st.text(max_size=10)}),
            "success_time": st.sampled_from([None, "yesterday", "2025-01-01T08:00:30Z"]),
            "out_trade_no": st.text(max_size=40),
        },
    )
)
def test_a_genuine_notify_pays_only_when_every_check_passes(products, wechat_key, changes):
    # Each example's payment is alone with its transaction_id, as at WeChat.
    Order.objects.all().delete()
    order = v3_order(products)

    response = post_v3(V3_NOTIFY_URL, *paid_notify(order, wechat_key, **changes))

    assert response.status_code in (204, 400)
    order = reload(order)
    if not changes:
        assert order.status == Order.Status.PAID  # the genuine notify itself
    if order.status == Order.Status.PAID:
        genuine = shop_transaction(order)
        for name in ("appid", "mchid", "out_trade_no", "payer"):
            assert changes.get(name, genuine[name]) == genuine[name]
        assert changes.get("amount", genuine["amount"])["total"] == order.total_fee
        assert changes.get("trade_state", "SUCCESS") == "SUCCESS"
