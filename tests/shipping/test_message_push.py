"""``GET, POST /wechat/message``: WeChat's message push (docs/INVARIANTS.md §8).

A bare §n in this file is a section of docs/protocol/miniprogram-server-api.md. Pushes are
signed and encrypted by the simulator's code (the ``wechat`` fixture), never by the shop's.
"""

import html
import json
import threading
import time

import pytest
from django.db import OperationalError, connection
from django.test import Client

from orders.models import FulfilmentStatus, Order
from shipping.models import MessageEvent
from tests.factories import get_ok, reload

Outcome = MessageEvent.Outcome
URL = "/wechat/message"
TOKEN = "push-token-4f3c2a1b"  # tests/shipping/conftest.py's PUSH_TOKEN
TX = "4200002501202501018123456789"  # … and its PUSH_TRANSACTION_ID


def only_event() -> MessageEvent:
    (row,) = MessageEvent.objects.all()
    return row


def is_success(response) -> bool:
    return (response.status_code, response.content) == (200, b"success")


# -- URL verification (GET, §3.2) -------------------------------------------------------------


@pytest.mark.django_db
def test_url_verification_answers_echostr_with_the_official_vector(settings):
    settings.WECHAT_MESSAGE_TOKEN = "AAAAA"
    response = Client().get(
        URL,
        {
            "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696",
            "timestamp": "1714036504",
            "nonce": "1514711492",
            "echostr": "4375120948345356249",
        },
    )

    assert (response.status_code, response.content) == (200, b"4375120948345356249")
    assert response["Content-Type"].startswith("text/plain")
    assert not MessageEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"signature": "f464b24fc39322e44b38aa78f5edd27bd1441697"},
        {"timestamp": "1714036505"},
        {"nonce": "1"},
        {"signature": None},
        {"timestamp": None},
        {"nonce": None},
    ],
)
def test_url_verification_with_a_bad_or_missing_signature_is_403(settings, change):
    settings.WECHAT_MESSAGE_TOKEN = "AAAAA"
    params = {
        "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696",
        "timestamp": "1714036504",
        "nonce": "1514711492",
        "echostr": "4375120948345356249",
    }
    params = {k: v for k, v in {**params, **change}.items() if v is not None}

    response = Client().get(URL, params)

    assert response.status_code == 403
    assert b"4375120948345356249" not in response.content
    assert "detail" in response.json()


@pytest.mark.django_db
def test_url_verification_without_echostr_is_400(settings):
    settings.WECHAT_MESSAGE_TOKEN = "AAAAA"
    response = Client().get(
        URL,
        {"signature": "f464b24fc39322e44b38aa78f5edd27bd1441696", "timestamp": "1714036504",
         "nonce": "1514711492"},
    )
    assert response.status_code == 400


@pytest.mark.django_db
def test_without_a_token_nothing_verifies_get_and_post_are_503_and_the_push_is_kept(settings):
    settings.WECHAT_MESSAGE_TOKEN = ""
    get = Client().get(URL, {"signature": "x", "timestamp": "1", "nonce": "2", "echostr": "3"})
    post = Client().post(URL + "?signature=x&timestamp=1&nonce=2", data=b'{"a":1}',
                         content_type="application/json")

    assert get.status_code == post.status_code == 503
    assert "WECHAT_MESSAGE_TOKEN" in get.json()["detail"]
    assert "WECHAT_MESSAGE_TOKEN" in post.json()["detail"]
    row = only_event()
    assert (row.outcome, row.raw_body, row.verified) == (Outcome.ERROR, '{"a":1}', None)


@pytest.mark.django_db
def test_other_methods_are_405(settings):
    settings.WECHAT_MESSAGE_TOKEN = TOKEN
    assert Client().put(URL).status_code == 405
    assert Client().delete(URL).status_code == 405


# -- events applied (§2.8), safe and plaintext mode ---------------------------------------------


def test_settlement_with_receipt_marks_the_order_received(wechat, trade_order):
    event = wechat.settlement()

    response = wechat.push(event)

    assert is_success(response)
    assert response["Content-Type"].startswith("text/plain")
    order = reload(trade_order)
    assert order.fulfilment_status == FulfilmentStatus.RECEIVED
    assert order.received_at is not None
    row = only_event()
    assert (row.outcome, row.verified, row.order_id) == (Outcome.APPLIED, True, order.pk)
    assert (row.event, row.transaction_id, row.event_time) == (
        "trade_manage_order_settlement",
        TX,
        event["CreateTime"],
    )
    assert row.payload == event  # the decrypted event in safe mode
    assert row.remote_addr == "101.226.103.1"
    assert "timestamp=" in row.query
    assert row.processed_at is not None


def test_safe_mode_keeps_the_ciphertext_as_received(wechat_safe, trade_order):
    query, body = wechat_safe.signed(wechat_safe.settlement())

    assert is_success(wechat_safe.post(query, body))

    row = only_event()
    assert row.raw_body == body.decode()
    assert "Encrypt" in row.raw_body and TX not in row.raw_body


@pytest.mark.parametrize("only", ["confirm_receive_time", "settlement_time"])
def test_either_time_means_received(wechat, trade_order, only):
    event = wechat.settlement()
    del event["confirm_receive_time" if only == "settlement_time" else "settlement_time"]

    assert is_success(wechat.push(event))

    assert reload(trade_order).fulfilment_status == FulfilmentStatus.RECEIVED


def test_settlement_without_times_is_recorded_only(wechat, trade_order):
    assert is_success(wechat.push(wechat.settlement(settled=False)))

    assert reload(trade_order).fulfilment_status == FulfilmentStatus.SHIPPED
    row = only_event()
    assert (row.outcome, row.order_id) == (Outcome.RECORDED, trade_order.pk)


def test_settlement_of_an_order_already_received_is_recorded(wechat, trade_order):
    wechat.push(wechat.settlement(CreateTime=1))
    received_at = reload(trade_order).received_at

    assert is_success(wechat.push(wechat.settlement(CreateTime=2)))

    assert reload(trade_order).received_at == received_at
    assert MessageEvent.objects.order_by("pk").last().outcome == Outcome.RECORDED


def test_remind_shipping_flags_the_order(wechat, unshipped_trade_order):
    event = wechat.event("trade_manage_remind_shipping", msg="请尽快发货")

    assert is_success(wechat.push(event))

    order = reload(unshipped_trade_order)
    assert order.needs_attention
    assert "WeChat reminds: ship" in order.attention_reason
    assert order.fulfilment_status == FulfilmentStatus.UNFULFILLED
    assert only_event().outcome == Outcome.APPLIED


def test_remind_shipping_for_an_order_shipped_here_says_the_upload_may_have_failed(
    wechat, trade_order
):
    assert is_success(wechat.push(wechat.event("trade_manage_remind_shipping")))

    order = reload(trade_order)
    assert order.needs_attention and "shipped here" in order.attention_reason


def test_other_events_are_recorded_and_answered_success(wechat):
    event = wechat.event("trade_manage_remind_access_api", transaction_id="", msg="hello")

    assert is_success(wechat.push(event))

    row = only_event()
    assert (row.outcome, row.order_id, row.verified) == (Outcome.RECORDED, None, True)


def test_derived_settlement_vector_is_accepted_in_safe_mode_whatever_its_age(
    settings, shopper, products, trade_order
):
    # §7's derived vector, byte for byte: Token AAAAA, 43 x "A", signed 2025-01-02. Safe mode
    # has no time window: a replay is a byte-identical copy, and copies are applied once.
    settings.WECHAT_MESSAGE_TOKEN, settings.WECHAT_MESSAGE_AES_KEY = "AAAAA", "A" * 43
    settings.WECHAT_APPID = "wxba5fad812f8e6fb9"
    encrypt = (
        "uMMzGtqcnpOzXOYBwDQNrRgv2iSawbvFGZAIn42fmAk+VL06G6iprNXrwlwvwOoKYBgT0Jk5T+tTynBhNfKBUMu8"
        "5JUQEhOK256tBBQuE0ioeSn/LxePqvyw9trtG9Hh74aPsWsaBCGzJnowsAnLAhKWRrcUMDfRymp/jsBpL+SmtVdQ"
        "YoD+yvOJ26h49BF8ArBAyjav9jUmxVqdZBqwFdBzjX4LE4PoAEaODvTmHL1qX5XExFWI/0v01lOzgOyfuseKtsvq"
        "gGE6P0qREpbYmPYu3tedR88jZMMFy1/ZoqTUegLwgF9xjoBQ6OMeMYRg5oYliQxD1P/TQvZifFdC/Ot7xaM8nOzc"
        "moFTOPeadJy8D684Hmj+gCybHEe5tFj8m82JvC0CXyRTbGpl3wMpcQoab0ve71QO2dvjT9vrL5b5Rxn1hE+cnMF2"
        "RkqUvtlIor/5bQywIwzUnKXfMyj34Qh2CfFiwaWVCHlea2XpKrN6TzdXqonugjDQ2sHanXnuF6M/BHSdX2r2/E7l"
        "qFCEQf3MZ44MNryWjFHblG7A09xIH1/3OCq+ObR1ILYdJqRGuriXS1ypNo0mlVlMvhjUpQ=="
    )
    query = (
        "signature=bf8048e365e9f396d4ea9d00ae341f073c06674f&timestamp=1735776001"
        "&nonce=1234567890&openid=o9AgO5Kd5ggOC-bXrbNODIiE3bGY&encrypt_type=aes"
        "&msg_signature=3ca1c233d8eab07518df48d60d510aa313f2ef4e"
    )
    body = json.dumps({"ToUserName": "gh_97417a04a28d", "Encrypt": encrypt})

    response = Client().post(f"{URL}?{query}", data=body, content_type="application/json")

    assert is_success(response)
    row = only_event()
    assert (row.outcome, row.event_time, row.order_id) == (
        Outcome.RECORDED,
        1735776000,
        trade_order.pk,
    )
    assert row.payload["estimated_settlement_time"] == 1736640000


# -- exactly once --------------------------------------------------------------------------------


def test_the_same_event_twice_is_applied_once(wechat, trade_order):
    query, body = wechat.signed(wechat.settlement())

    first, second = wechat.post(query, body), wechat.post(query, body)

    assert is_success(first) and is_success(second)
    rows = list(MessageEvent.objects.order_by("pk"))
    assert [row.outcome for row in rows] == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert rows[1].order_id == trade_order.pk
    assert f"#{rows[0].pk}" in rows[1].detail


def test_the_same_event_resent_with_a_fresh_signature_is_still_a_duplicate(wechat, trade_order):
    event = wechat.settlement()
    wechat.push(event, nonce="111")

    assert is_success(wechat.push(event, nonce="222"))

    outcomes = list(MessageEvent.objects.order_by("pk").values_list("outcome", flat=True))
    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE]


def test_create_time_as_a_string_is_the_same_event(wechat, trade_order):
    event = wechat.settlement()
    wechat.push(event)

    assert is_success(wechat.push({**event, "CreateTime": str(event["CreateTime"])}))

    assert MessageEvent.objects.order_by("pk").last().outcome == Outcome.DUPLICATE


def test_the_same_reminder_on_another_day_is_another_event_and_flags_once(
    wechat, unshipped_trade_order
):
    wechat.push(wechat.event("trade_manage_remind_shipping", CreateTime=1_735_000_000))
    wechat.push(wechat.event("trade_manage_remind_shipping", CreateTime=1_735_086_400))

    outcomes = set(MessageEvent.objects.values_list("outcome", flat=True))
    assert outcomes == {Outcome.APPLIED}
    assert reload(unshipped_trade_order).attention_reason.count("WeChat reminds") == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_copies_are_applied_once(wechat_safe, trade_order):
    wechat, order = wechat_safe, trade_order
    query, body = wechat.signed(wechat.settlement())
    barrier = threading.Barrier(8)
    answers: list[tuple[int, bytes]] = []

    def deliver():
        try:
            barrier.wait()
            response = Client().post(
                URL + "?" + "&".join(f"{k}={v}" for k, v in query.items()),
                data=body,
                content_type="application/json",
            )
            answers.append((response.status_code, response.content))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [(200, b"success")] * 8
    outcomes = sorted(MessageEvent.objects.values_list("outcome", flat=True))
    assert outcomes == [Outcome.APPLIED] + [Outcome.DUPLICATE] * 7
    assert reload(order).fulfilment_status == FulfilmentStatus.RECEIVED


# -- refused: not authentic (403) -----------------------------------------------------------------


def assert_refused(response, order: Order | None = None, status: int = 403) -> MessageEvent:
    assert response.status_code == status, response.content
    assert "detail" in response.json()
    row = only_event()
    if order is not None:
        fresh = reload(order)
        assert (fresh.fulfilment_status, fresh.needs_attention) == (
            order.fulfilment_status,
            order.needs_attention,
        )
    return row


def test_a_forged_signature_is_403_and_changes_nothing(wechat, trade_order):
    response = wechat.push(wechat.settlement(), token="not-the-token")

    row = assert_refused(response, trade_order)
    assert (row.outcome, row.verified) == (Outcome.REJECTED, False)
    assert row.order_id is None


def test_safe_mode_ignores_a_valid_plain_signature_without_msg_signature(
    wechat_safe, trade_order
):
    query, body = wechat_safe.signed(wechat_safe.settlement())
    del query["msg_signature"]

    row = assert_refused(wechat_safe.post(query, body), trade_order)
    assert row.outcome == Outcome.REJECTED


@pytest.mark.parametrize("missing", ["signature", "timestamp", "nonce"])
def test_plaintext_push_missing_a_parameter_is_403(wechat_plaintext, trade_order, missing):
    wechat = wechat_plaintext
    query, body = wechat.signed(wechat.settlement())
    del query[missing]

    assert assert_refused(wechat.post(query, body), trade_order).outcome == Outcome.REJECTED


@pytest.mark.parametrize("missing", ["msg_signature", "timestamp", "nonce"])
def test_safe_push_missing_a_parameter_is_403(wechat_safe, trade_order, missing):
    query, body = wechat_safe.signed(wechat_safe.settlement())
    del query[missing]

    assert assert_refused(wechat_safe.post(query, body), trade_order).outcome == Outcome.REJECTED


def test_another_appid_inside_the_ciphertext_is_403(wechat_safe, trade_order):
    response = wechat_safe.push(wechat_safe.settlement(), appid="wx0000000000000000")

    row = assert_refused(response, trade_order)
    assert (row.outcome, row.verified) == (Outcome.REJECTED, False)
    assert "AppID" in row.detail


def test_tampered_ciphertext_is_403(wechat_safe, trade_order):
    query, body = wechat_safe.signed(wechat_safe.settlement())
    outer = json.loads(body)
    encrypt = outer["Encrypt"]
    outer["Encrypt"] = encrypt[:40] + ("A" if encrypt[40] != "A" else "B") + encrypt[41:]

    response = wechat_safe.post(query, json.dumps(outer).encode())

    assert assert_refused(response, trade_order).outcome == Outcome.REJECTED


def test_bad_padding_is_403_even_when_signed_with_the_token(wechat_safe, trade_order):
    # Someone with the Token but not the EncodingAESKey: msg_signature checks out, the
    # ciphertext does not.
    plain = (
        b"0123456789abcdef" + (2).to_bytes(4, "big") + b"{}" + b"wxd930ea5d5a258f4f"
        + bytes([0]) * 24
    )
    query = {"signature": "x", "timestamp": str(int(time.time())), "nonce": "42"}
    query, body = wechat_safe.sealed_query(query, wechat_safe.encrypt_raw(plain))

    row = assert_refused(wechat_safe.post(query, body), trade_order)
    assert (row.outcome, row.verified) == (Outcome.REJECTED, False)
    assert "padding" in row.detail


def test_encrypted_with_another_key_is_403(wechat_safe, trade_order):
    from wxsim import push as wechat_push

    query = {"signature": "x", "timestamp": str(int(time.time())), "nonce": "42"}
    other = wechat_push.encrypt(b"{}", "A" * 43, "wxd930ea5d5a258f4f")
    query, body = wechat_safe.sealed_query(query, other)

    assert assert_refused(wechat_safe.post(query, body), trade_order).outcome == Outcome.REJECTED


def test_a_plaintext_push_is_refused_once_safe_mode_is_configured(wechat_safe, trade_order):
    # With an EncodingAESKey WeChat encrypts every push (safe and compatible mode): a
    # plaintext one, whose signature does not cover its body, is a downgrade.
    wechat_safe.mode = "plaintext"
    response = wechat_safe.push(wechat_safe.settlement())

    row = assert_refused(response, trade_order)
    assert "plaintext" in row.detail.lower()


def test_plaintext_push_with_an_old_timestamp_is_403(wechat_plaintext, trade_order):
    wechat = wechat_plaintext

    response = wechat.push(wechat.settlement(), timestamp=str(int(time.time()) - 3600))

    row = assert_refused(response, trade_order)
    assert (row.outcome, row.verified) == (Outcome.REJECTED, True)
    assert "timestamp" in row.detail


def test_unknown_encrypt_type_is_403(wechat_safe, trade_order):
    query, body = wechat_safe.signed(wechat_safe.settlement())

    response = wechat_safe.post({**query, "encrypt_type": "sm4"}, body)

    assert assert_refused(response, trade_order).outcome == Outcome.REJECTED


# -- refused: unreadable (400, 413) ------------------------------------------------------------


def test_an_oversize_body_is_413_and_only_its_start_kept(wechat, trade_order):
    body = b'{"Encrypt":"' + b"A" * (64 * 1024) + b'"}'

    response = wechat.post(wechat.signed(b"{}")[0], body)

    row = assert_refused(response, trade_order, status=413)
    assert (row.outcome, row.body_truncated, len(row.raw_body)) == (Outcome.MALFORMED, True, 4096)


@pytest.mark.parametrize(
    "message",
    [b"not json", b"[]", b'{"Event":"x"}', b'{"Event":"x","CreateTime":"soon"}', b"\xff\x00{}"],
)
def test_an_authentic_push_that_is_not_an_event_is_400(wechat, trade_order, message):
    response = wechat.push(message)

    row = assert_refused(response, trade_order, status=400)
    assert (row.outcome, row.verified) == (Outcome.MALFORMED, True)


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"Encrypt":7}', b"\xff\xfe"])
def test_a_safe_mode_body_without_encrypt_is_400(wechat_safe, trade_order, body):
    query, _ = wechat_safe.signed(wechat_safe.settlement())

    row = assert_refused(wechat_safe.post(query, body), trade_order, status=400)
    assert row.outcome == Outcome.MALFORMED


def test_nul_and_invalid_utf8_are_stored_escaped(wechat_safe):
    query, _ = wechat_safe.signed(wechat_safe.settlement())

    wechat_safe.post(query, b"\x00\xff")

    assert only_event().raw_body == "\\x00\\xff"


# -- orders this shop does not know or has not shipped ----------------------------------------


def test_an_unknown_transaction_is_recorded_and_answered_success(wechat, db):
    # WeChat resends what is not answered success; an order that is not here never will be.
    assert is_success(wechat.push(wechat.settlement()))

    row = only_event()
    assert (row.outcome, row.order_id, row.transaction_id) == (Outcome.UNKNOWN_ORDER, None, TX)


def test_settlement_of_an_order_not_shipped_here_flags_it(wechat, unshipped_trade_order):
    assert is_success(wechat.push(wechat.settlement()))

    order = reload(unshipped_trade_order)
    assert order.fulfilment_status == FulfilmentStatus.UNFULFILLED
    assert order.needs_attention and "not shipped here" in order.attention_reason
    row = only_event()
    assert (row.outcome, row.order_id) == (Outcome.APPLIED, order.pk)


# -- our own failure -------------------------------------------------------------------------------


def test_a_database_failure_while_applying_is_500_and_the_body_is_kept(wechat, trade_order):
    def fail_order_updates(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and "orders_order" in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    query, body = wechat.signed(wechat.settlement())
    with connection.execute_wrapper(fail_order_updates):
        response = wechat.post(query, body)

    assert response.status_code == 500
    assert response.content != b"success"
    assert reload(trade_order).fulfilment_status == FulfilmentStatus.SHIPPED
    row = only_event()
    assert (row.outcome, row.raw_body) == (Outcome.ERROR, body.decode())

    # WeChat retries once the database is back: applied, once.
    assert is_success(wechat.post(query, body))
    assert reload(trade_order).fulfilment_status == FulfilmentStatus.RECEIVED
    assert MessageEvent.objects.order_by("pk").last().outcome == Outcome.APPLIED


def test_a_push_that_cannot_even_be_recorded_is_500_and_logged(wechat_safe, caplog):
    def fail_everything(execute, sql, params, many, context):
        raise OperationalError("could not connect to server")

    query, body = wechat_safe.signed(wechat_safe.settlement())
    with connection.execute_wrapper(fail_everything):
        response = wechat_safe.post(query, body)

    assert response.status_code == 500
    assert json.loads(body)["Encrypt"][:100] in caplog.text  # the evidence survives
    assert TOKEN not in caplog.text


def test_safe_mode_push_without_our_aes_key_is_503_and_kept(wechat_safe, settings, trade_order):
    query, body = wechat_safe.signed(wechat_safe.settlement())
    settings.WECHAT_MESSAGE_AES_KEY = ""

    response = wechat_safe.post(query, body)

    row = assert_refused(response, trade_order, status=503)
    assert (row.outcome, row.raw_body) == (Outcome.ERROR, body.decode())
    assert "WECHAT_MESSAGE_AES_KEY" in response.json()["detail"]


def test_a_malformed_aes_key_setting_is_503_not_a_refusal(wechat_safe, settings, trade_order):
    query, body = wechat_safe.signed(wechat_safe.settlement())
    settings.WECHAT_MESSAGE_AES_KEY = "too-short"

    row = assert_refused(wechat_safe.post(query, body), trade_order, status=503)
    assert row.outcome == Outcome.ERROR


def test_the_token_and_key_are_never_logged_nor_stored(wechat, trade_order, caplog):
    wechat.push(wechat.settlement())
    wechat.push(wechat.settlement(), token="wrong")

    for row in MessageEvent.objects.all():
        assert TOKEN not in row.raw_body + row.query + row.detail
    assert TOKEN not in caplog.text
    assert "q3Zb0JH9xv8Yc2m1Lr7Tn4Wk6Pf5Ds0Ae9Gu3Ji8Kl2" not in caplog.text


# -- admin: read-only evidence ---------------------------------------------------------------------


def test_admin_lists_message_events_read_only(wechat_safe, trade_order, boss_client):
    wechat_safe.push(wechat_safe.settlement())
    wechat_safe.push(wechat_safe.settlement(), token="wrong")
    applied = MessageEvent.objects.get(outcome=Outcome.APPLIED)
    rejected = MessageEvent.objects.get(outcome=Outcome.REJECTED)

    def shows(page: str, row: MessageEvent) -> bool:
        return f"/admin/shipping/messageevent/{row.pk}/change/" in page

    page = get_ok(boss_client, "/admin/shipping/messageevent/")
    assert shows(page, applied) and shows(page, rejected)
    assert "trade_manage_order_settlement" in page and trade_order.out_trade_no in page
    assert f"/admin/orders/order/{trade_order.pk}/change/" in page
    assert "/admin/shipping/messageevent/add/" not in page

    filtered = get_ok(boss_client, "/admin/shipping/messageevent/?outcome=rejected")
    assert shows(filtered, rejected) and not shows(filtered, applied)
    by_search = get_ok(boss_client, f"/admin/shipping/messageevent/?q={TX}")
    assert shows(by_search, applied) and not shows(by_search, rejected)
    # An order's events: the list filtered by the order.
    by_order = get_ok(
        boss_client, f"/admin/shipping/messageevent/?order__id__exact={trade_order.pk}"
    )
    assert shows(by_order, applied) and not shows(by_order, rejected)
    unverified = get_ok(boss_client, "/admin/shipping/messageevent/?verified__exact=0")
    assert shows(unverified, rejected) and not shows(unverified, applied)
    by_event = get_ok(
        boss_client, "/admin/shipping/messageevent/?event=trade_manage_order_settlement"
    )
    assert shows(by_event, applied) and not shows(by_event, rejected)

    detail = get_ok(boss_client, f"/admin/shipping/messageevent/{applied.pk}/change/")
    assert html.escape(applied.raw_body[:60], quote=False) in detail.replace("&quot;", '"')
    assert 'name="_save"' not in detail
    assert boss_client.post(f"/admin/shipping/messageevent/{applied.pk}/delete/").status_code == 403
    assert MessageEvent.objects.count() == 2


# -- the simulator delivers to a live shop ------------------------------------------------------


def test_the_simulators_settlement_push_reaches_a_live_shop(
    live_server, settings, push_simulator, payer, products
):
    from orders.fulfilment import order_ship
    from tests.factories import make_order
    from tests.wxsim.client import UPLOAD, shipping_upload, wait_until

    settings.WECHAT_MESSAGE_TOKEN = TOKEN
    settings.WECHAT_MESSAGE_AES_KEY = "q3Zb0JH9xv8Yc2m1Lr7Tn4Wk6Pf5Ds0Ae9Gu3Ji8Kl2"
    wx = push_simulator
    # The shop's order, paid at the simulator with the simulator's notify to the live shop.
    order = make_order(payer, products, total_fee=101)
    wx.unifiedorder(
        f"{live_server.url}/payment/wxnotify", out_trade_no=order.out_trade_no, total_fee=101
    )
    assert wx.pay(order.out_trade_no).status_code == 200
    paid = wait_until(lambda: Order.objects.filter(pk=order.pk, status=Order.Status.PAID).first())
    # Shipped here, and the shipment uploaded to WeChat (the simulator) by hand.
    order_ship(order=paid, logistics_type="express", express_company="SF", tracking_no="SF1")
    uploaded = wx.api(UPLOAD, shipping_upload(paid.transaction_id), wx.token())
    assert uploaded["errcode"] == 0, uploaded

    answer = wx.control(
        "POST",
        "/sim/push",
        {
            "url": f"{live_server.url}/wechat/message",
            "token": TOKEN,
            "mode": "safe",
            "aes_key": settings.WECHAT_MESSAGE_AES_KEY,
            "settlement": {"transaction_id": paid.transaction_id, "settled": True},
            "copies": 2,
        },
    ).json()

    assert [attempt["success"] for attempt in answer["attempts"]] == [True, True], answer
    assert reload(paid).fulfilment_status == FulfilmentStatus.RECEIVED
    outcomes = sorted(MessageEvent.objects.values_list("outcome", flat=True))
    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert MessageEvent.objects.get(outcome=Outcome.APPLIED).payload["settlement_time"]


def test_the_query_string_is_kept_as_the_bytes_sent_read_as_utf8(wechat):
    """WSGI hands the query string over as latin-1 (PEP 3333): the evidence keeps what was
    sent, not its bytes read as latin-1 (``é``, not ``Ã©``)."""
    query, body = wechat.signed(wechat.settlement())

    wechat.post({**query, "note": "é"}, body)

    assert only_event().query.endswith("&note=é")
