"""Rules of the message push (shipping/push.py) that a mutation run found unpinned: the exact
words WeChat and staff read for each refusal and outcome, the reasons an order is flagged
with, the edges of the body size and of the plaintext window, absent query parameters
checked as empty, which events are one event, which copy a duplicate names, that the ledger's
evidence is written once, and the log lines of a push and of a failure."""

import json
import logging
import time

import pytest
from django.db import OperationalError, connection

from orders.models import FulfilmentStatus
from shipping.models import MessageEvent
from shipping.push import MAX_BODY_BYTES, message_receive
from tests.factories import make_order, reload
from wxsim import push as wechat_push

Outcome = MessageEvent.Outcome
TOKEN = "push-token-4f3c2a1b"  # tests/shipping/conftest.py's PUSH_TOKEN
AES_KEY = "q3Zb0JH9xv8Yc2m1Lr7Tn4Wk6Pf5Ds0Ae9Gu3Ji8Kl2"  # … its PUSH_AES_KEY
TX = "4200002501202501018123456789"  # … and its PUSH_TRANSACTION_ID
OTHER_EVENT = "trade_manage_remind_access_api"


def only_event() -> MessageEvent:
    (row,) = MessageEvent.objects.all()
    return row


def rows() -> list[MessageEvent]:
    return list(MessageEvent.objects.order_by("pk"))


def detail(response) -> str:
    return response.json()["detail"]


def signed_without(wechat, event: dict, name: str) -> tuple[dict[str, str], bytes]:
    """``event`` signed with an empty ``name`` (timestamp or nonce), sent without it."""
    params = {"timestamp": str(int(time.time())), "nonce": "1234567890", name: ""}
    query, body = wechat_push.signed_push(
        event,
        mode=wechat.mode,
        token=TOKEN,
        encoding_aes_key=AES_KEY,
        appid=wechat.settings.WECHAT_APPID,
        **params,
    )
    del query[name]
    return query, body


def push_log(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "shipping.push"]


# -- what WeChat is answered, and staff read, when a push is refused --------------------------


def test_without_a_token_the_answer_says_which_setting_to_set(settings, wechat_plaintext):
    settings.WECHAT_MESSAGE_TOKEN = ""

    response = wechat_plaintext.push(wechat_plaintext.settlement())

    assert detail(response) == (
        "Message push is not configured: set WECHAT_MESSAGE_TOKEN (the console's Token)."
    )


def test_a_body_of_exactly_the_limit_is_read_and_kept_whole(wechat_plaintext, trade_order):
    event = json.dumps(wechat_plaintext.settlement()).encode()
    body = event + b" " * (MAX_BODY_BYTES - len(event))

    response = wechat_plaintext.post(wechat_plaintext.signed(body)[0], body)

    assert response.content == b"success"
    row = only_event()
    assert (row.outcome, row.body_truncated, row.raw_body) == (
        Outcome.APPLIED,
        False,
        body.decode(),
    )


def test_a_body_one_byte_over_the_limit_is_413_saying_the_limit(wechat_plaintext):
    body = b"x" * (MAX_BODY_BYTES + 1)

    response = wechat_plaintext.post(wechat_plaintext.signed(body)[0], body)

    assert (response.status_code, detail(response)) == (413, "Body over 65536 bytes.")
    assert only_event().raw_body == "x" * 4096


def test_a_plaintext_body_that_is_not_json_is_unreadable_as_an_event(wechat_plaintext):
    response = wechat_plaintext.push(b"not json")

    assert detail(response) == "Unreadable event: the event is not JSON."


def test_a_safe_mode_body_that_is_not_json_is_unreadable_as_a_body(wechat_safe):
    query, _ = wechat_safe.signed(wechat_safe.settlement())

    response = wechat_safe.post(query, b"not json")

    assert detail(response) == "Unreadable body: the body is not JSON."


def test_an_unknown_encrypt_type_is_named_in_its_first_16_characters(wechat_safe):
    query, body = wechat_safe.signed(wechat_safe.settlement())

    response = wechat_safe.post({**query, "encrypt_type": "sm4" + "x" * 30}, body)

    assert detail(response) == "Unknown encrypt_type 'sm4xxxxxxxxxxxxx'."


def test_encrypt_type_raw_is_a_plaintext_push(wechat_plaintext, trade_order):
    query, body = wechat_plaintext.signed(wechat_plaintext.settlement())

    response = wechat_plaintext.post({**query, "encrypt_type": "raw"}, body)

    assert response.content == b"success"
    assert reload(trade_order).fulfilment_status == FulfilmentStatus.RECEIVED


def test_a_bad_plaintext_signature_is_named(wechat_plaintext):
    response = wechat_plaintext.push(wechat_plaintext.settlement(), token="wrong")

    assert detail(response) == "Bad or missing signature."


def test_a_bad_msg_signature_is_named(wechat_safe):
    response = wechat_safe.push(wechat_safe.settlement(), token="wrong")

    assert detail(response) == "Bad or missing msg_signature."


def test_a_plaintext_push_in_safe_mode_is_refused_saying_why(wechat_safe):
    wechat_safe.mode = "plaintext"

    response = wechat_safe.push(wechat_safe.settlement())

    assert detail(response) == (
        "Plaintext push refused: WECHAT_MESSAGE_AES_KEY is set, so WeChat encrypts every push "
        "(safe or compatible mode), and a plaintext signature does not cover the body."
    )


def test_an_old_plaintext_push_is_refused_quoting_20_characters_of_its_timestamp(
    wechat_plaintext,
):
    response = wechat_plaintext.push(wechat_plaintext.settlement(), timestamp="9" * 30)

    assert detail(response) == (
        "Plaintext push with timestamp '99999999999999999999', more than 300 s from now: "
        "refused (its signature does not cover the body, so an old one could be replayed "
        "with any body)."
    )


def test_a_safe_mode_push_without_our_appid_setting_is_503(wechat_safe, settings, trade_order):
    query, body = wechat_safe.signed(wechat_safe.settlement())
    settings.WECHAT_APPID = ""

    response = wechat_safe.post(query, body)

    assert (response.status_code, detail(response)) == (
        503,
        "A safe-mode push, but WECHAT_MESSAGE_AES_KEY (the console's EncodingAESKey) or "
        "WECHAT_APPID is not set: it cannot be decrypted here.",
    )
    assert reload(trade_order).fulfilment_status == FulfilmentStatus.SHIPPED


def test_a_malformed_aes_key_setting_is_named_with_what_is_wrong(wechat_safe, settings):
    query, body = wechat_safe.signed(wechat_safe.settlement())
    settings.WECHAT_MESSAGE_AES_KEY = "too-short"

    response = wechat_safe.post(query, body)

    assert detail(response) == (
        "WECHAT_MESSAGE_AES_KEY is invalid: the EncodingAESKey must be 43 characters."
    )


# -- the plaintext window, and absent parameters ------------------------------------------------


@pytest.mark.parametrize(
    ("age", "accepted"), [(300, True), (-300, True), (301, False), (-301, False)]
)
def test_a_plaintext_push_is_accepted_up_to_300_seconds_either_side_of_now(
    wechat_plaintext, trade_order, monkeypatch, age, accepted
):
    now = 1_750_000_000
    query, body = wechat_plaintext.signed(wechat_plaintext.settlement(), timestamp=str(now - age))
    monkeypatch.setattr(time, "time", lambda: float(now))

    response = wechat_plaintext.post(query, body)

    assert (response.content == b"success") is accepted


def test_a_plaintext_push_without_timestamp_is_refused_for_its_age_not_its_signature(
    wechat_plaintext,
):
    response = wechat_plaintext.post(
        *signed_without(wechat_plaintext, wechat_plaintext.settlement(), "timestamp")
    )

    assert response.status_code == 403
    assert detail(response).startswith("Plaintext push with timestamp '', more than 300 s")
    assert only_event().verified is True


def test_a_safe_push_without_timestamp_is_checked_as_signed_over_an_empty_one(
    wechat_safe, trade_order
):
    response = wechat_safe.post(*signed_without(wechat_safe, wechat_safe.settlement(), "timestamp"))

    assert response.content == b"success"


def test_a_push_without_nonce_is_checked_as_signed_over_an_empty_one(wechat, trade_order):
    response = wechat.post(*signed_without(wechat, wechat.settlement(), "nonce"))

    assert response.content == b"success"
    assert reload(trade_order).fulfilment_status == FulfilmentStatus.RECEIVED


# -- what is applied, and the words staff read ------------------------------------------------


def test_a_settlement_applied_says_the_order_is_received(wechat_safe, trade_order):
    wechat_safe.push(wechat_safe.settlement())

    assert only_event().detail == "Receipt confirmed at WeChat: order received."


def test_a_settlement_of_an_order_already_received_says_so(wechat_safe, trade_order):
    wechat_safe.push(wechat_safe.settlement(CreateTime=1))
    wechat_safe.push(wechat_safe.settlement(CreateTime=2))

    assert rows()[-1].detail == "Already received."


def test_a_settlement_of_an_order_not_shipped_here_flags_it_in_these_words(
    wechat_safe, unshipped_trade_order
):
    wechat_safe.push(wechat_safe.settlement())

    assert reload(unshipped_trade_order).attention_reason == (
        "WeChat reports receipt confirmed (or settled), but the order is not shipped here: "
        "check its shipping."
    )
    assert only_event().detail == "Receipt confirmed at WeChat, not shipped here: flagged."


def test_the_shipping_push_without_receipt_times_says_settlement_is_to_come(
    wechat_safe, trade_order
):
    wechat_safe.push(wechat_safe.settlement(settled=False))

    assert only_event().detail == "Shipping finished at WeChat; settlement to come."


@pytest.mark.parametrize("empty", ["", 0, "0", None])
def test_receipt_times_that_are_empty_or_zero_mean_not_received(wechat_safe, trade_order, empty):
    event = wechat_safe.settlement(confirm_receive_time=empty, settlement_time=empty)

    wechat_safe.push(event)

    assert reload(trade_order).fulfilment_status == FulfilmentStatus.SHIPPED
    assert only_event().outcome == Outcome.RECORDED


def test_a_reminder_for_an_unshipped_order_flags_it_in_these_words(
    wechat_safe, unshipped_trade_order
):
    wechat_safe.push(wechat_safe.event("trade_manage_remind_shipping"))

    assert reload(unshipped_trade_order).attention_reason == (
        "WeChat reminds: ship this order (paid over 48 hours ago, no shipping at WeChat)."
    )
    assert only_event().detail == "Shipping reminder: order flagged."


def test_a_reminder_for_an_order_shipped_here_flags_it_in_these_words(wechat_safe, trade_order):
    wechat_safe.push(wechat_safe.event("trade_manage_remind_shipping"))

    assert reload(trade_order).attention_reason == (
        "WeChat reminds: ship this order, but it is shipped here: check that its shipping "
        "reached WeChat."
    )


def test_an_unknown_transaction_is_named_in_the_detail(wechat_safe, db):
    wechat_safe.push(wechat_safe.settlement())

    assert only_event().detail == (
        f"No order with transaction_id {TX!r}: recorded, answered success (it will not appear "
        "by retrying)."
    )


def test_a_settlement_without_a_transaction_matches_no_order_even_one_with_an_empty_id(
    wechat_safe, shopper, products
):
    order = make_order(shopper, products, transaction_id="")

    wechat_safe.push(wechat_safe.settlement(transaction_id=""))

    assert only_event().outcome == Outcome.UNKNOWN_ORDER
    assert not reload(order).needs_attention


def test_another_event_is_named_by_its_event(wechat_safe):
    wechat_safe.push(wechat_safe.event(OTHER_EVENT, transaction_id=""))

    assert only_event().detail == f"Event {OTHER_EVENT!r}: nothing to do."


def test_a_message_that_is_not_an_event_is_named_by_its_msg_type(wechat_safe):
    wechat_safe.push(wechat_safe.event("", transaction_id="", MsgType="text"))

    assert only_event().detail == "Event 'text': nothing to do."


# -- one event, once ----------------------------------------------------------------------------


def test_events_of_two_transactions_in_the_same_second_are_two_events(wechat_safe):
    wechat_safe.push(
        wechat_safe.event(
            OTHER_EVENT, transaction_id="4200000000000000000000000001", CreateTime=1_735_000_000
        )
    )
    wechat_safe.push(
        wechat_safe.event(
            OTHER_EVENT, transaction_id="4200000000000000000000000002", CreateTime=1_735_000_000
        )
    )

    assert [row.outcome for row in rows()] == [Outcome.RECORDED, Outcome.RECORDED]


def test_events_without_a_transaction_are_told_apart_by_their_sender(wechat_safe):
    for sender in ("o9AgO5Kd5ggOC-bXrbNODIiE3bGY", "o9AgO5Kd5ggOC-bXrbNODIiE3bGZ"):
        wechat_safe.push(
            wechat_safe.event(
                OTHER_EVENT, transaction_id="", FromUserName=sender, CreateTime=1_735_000_000
            )
        )

    assert [row.outcome for row in rows()] == [Outcome.RECORDED, Outcome.RECORDED]


def test_a_settlement_and_a_reminder_in_the_same_second_are_two_events(wechat_safe, trade_order):
    wechat_safe.push(wechat_safe.settlement(CreateTime=1_735_000_000))
    wechat_safe.push(wechat_safe.event("trade_manage_remind_shipping", CreateTime=1_735_000_000))

    assert [row.outcome for row in rows()] == [Outcome.APPLIED, Outcome.APPLIED]
    assert reload(trade_order).needs_attention


def test_a_duplicate_names_the_copy_it_repeats_not_the_latest_event(wechat_safe, trade_order):
    settlement = wechat_safe.settlement()
    wechat_safe.push(settlement)
    wechat_safe.push(wechat_safe.event(OTHER_EVENT, transaction_id=""))
    wechat_safe.push(settlement)

    first, _, copy = rows()
    assert (copy.outcome, copy.detail, copy.order_id) == (
        Outcome.DUPLICATE,
        f"Same event as #{first.pk}.",
        trade_order.pk,
    )


def test_every_copy_names_the_applied_one_not_the_copy_before_it(wechat_safe, trade_order):
    query, body = wechat_safe.signed(wechat_safe.settlement())
    for _ in range(3):
        wechat_safe.post(query, body)

    first, *copies = rows()
    assert [copy.detail for copy in copies] == [f"Same event as #{first.pk}."] * 2


# -- the ledger ------------------------------------------------------------------------------------


def test_the_evidence_is_written_once_and_never_rewritten(wechat, trade_order):
    updates: list[str] = []

    def record_updates(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and "shipping_messageevent" in sql:
            updates.append(sql)
        return execute(sql, params, many, context)

    query, body = wechat.signed(wechat.settlement())
    with connection.execute_wrapper(record_updates):
        wechat.post(query, body)
        wechat.post(query, body)

    assert updates
    for column in ("raw_body", "query", "remote_addr", "received_at", "body_truncated"):
        assert all(f'"{column}"' not in sql for sql in updates), column


def test_any_query_string_is_stored_even_one_that_is_not_text(settings, db):
    settings.WECHAT_MESSAGE_TOKEN = TOKEN

    receipt = message_receive(body=b"{}", query={}, query_string="nonce=\udcff", remote_addr=None)

    assert reload(receipt.event).query == "nonce=?"


# -- the log ---------------------------------------------------------------------------------------


def test_each_push_is_one_log_line_with_its_event_and_transaction(wechat_safe, trade_order, caplog):
    with caplog.at_level(logging.INFO, logger="shipping.push"):
        wechat_safe.push(wechat_safe.settlement())
        wechat_safe.push(wechat_safe.settlement(), token="wrong")

    applied, rejected = rows()
    assert push_log(caplog) == [
        f"message push id={applied.pk} event=trade_manage_order_settlement transaction_id={TX} "
        "outcome=applied",
        f"message push id={rejected.pk} event=- transaction_id=- outcome=rejected",
    ]


def test_a_failure_while_applying_is_logged_and_named_by_its_exception(
    wechat_safe, trade_order, caplog
):
    def fail_order_updates(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and "orders_order" in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail_order_updates):
        response = wechat_safe.push(wechat_safe.settlement())

    row = only_event()
    assert (response.status_code, detail(response)) == (500, "Processing failed: OperationalError")
    assert (row.outcome, row.detail) == (Outcome.ERROR, "Processing failed: OperationalError")
    assert push_log(caplog)[0] == f"message push {row.pk}: processing failed"


# Not inside a test-wide transaction, as in production: a failed save marks that one for rollback.
@pytest.mark.django_db(transaction=True)
def test_when_even_the_error_cannot_be_recorded_the_answer_still_names_it(
    wechat_safe, trade_order, caplog
):
    def fail_ledger_updates(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and "shipping_messageevent" in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail_ledger_updates):
        response = wechat_safe.push(wechat_safe.settlement())

    row = only_event()
    assert (response.status_code, detail(response)) == (500, "Processing failed: OperationalError")
    assert row.outcome == Outcome.RECEIVED
    assert push_log(caplog) == [
        f"message push {row.pk}: processing failed",
        f"message push {row.pk}: could not record the error",
    ]
