"""Message push: signing and encryption against the vectors of §7, delivery by POST /sim/push,
and the trade_manage_order_settlement event of a shipped trade.

A bare §n in this file is a section of docs/protocol/miniprogram-server-api.md. The pushes the
simulator delivers are checked with tests/wxsim/client.py's own push_signature/push_decrypt.
"""

import base64
import json

import pytest

from tests.wxsim.client import APPID, PAYER, push_decrypt, push_event, push_signature
from wxsim import push

# §7: the official example's Token, EncodingAESKey and AppID (the key is 32 zero bytes).
TOKEN, AES_KEY, VECTOR_APPID = "AAAAA", "A" * 43, "wxba5fad812f8e6fb9"
# For deliveries: a key of random-looking bytes, so nothing passes by zeros alone.
SHOP_AES_KEY = "q3Zb0JH9xv8Yc2m1Lr7Tn4Wk6Pf5Ds0Ae9Gu3Ji8Kl2"
OFFICIAL_ENCRYPT = (
    "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcv"
    "ZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3F"
    "n2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSe"
    "OBrebufAlr7F9mFUPAJGj04="
)
OFFICIAL_MESSAGE = (
    b'{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY",'
    b'"CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}'
)
SETTLEMENT_EVENT = {
    "ToUserName": "gh_97417a04a28d",
    "FromUserName": "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
    "CreateTime": 1735776000,
    "MsgType": "event",
    "Event": "trade_manage_order_settlement",
    "transaction_id": "4200002501202501018123456789",
    "merchant_id": "1900000001",
    "sub_merchant_id": "",
    "merchant_trade_no": "T20250101000000001",
    "pay_time": 1735689630,
    "shipped_time": 1735776000,
    "estimated_settlement_time": 1736640000,
}
SETTLEMENT_ENCRYPT = (
    "uMMzGtqcnpOzXOYBwDQNrRgv2iSawbvFGZAIn42fmAk+VL06G6iprNXrwlwvwOoKYBgT0Jk5T+tTynBhNfKBUMu85JUQ"
    "EhOK256tBBQuE0ioeSn/LxePqvyw9trtG9Hh74aPsWsaBCGzJnowsAnLAhKWRrcUMDfRymp/jsBpL+SmtVdQYoD+yvOJ"
    "26h49BF8ArBAyjav9jUmxVqdZBqwFdBzjX4LE4PoAEaODvTmHL1qX5XExFWI/0v01lOzgOyfuseKtsvqgGE6P0qREpbY"
    "mPYu3tedR88jZMMFy1/ZoqTUegLwgF9xjoBQ6OMeMYRg5oYliQxD1P/TQvZifFdC/Ot7xaM8nOzcmoFTOPeadJy8D684"
    "Hmj+gCybHEe5tFj8m82JvC0CXyRTbGpl3wMpcQoab0ve71QO2dvjT9vrL5b5Rxn1hE+cnMF2RkqUvtlIor/5bQywIwzU"
    "nKXfMyj34Qh2CfFiwaWVCHlea2XpKrN6TzdXqonugjDQ2sHanXnuF6M/BHSdX2r2/E7lqFCEQf3MZ44MNryWjFHblG7A"
    "09xIH1/3OCq+ObR1ILYdJqRGuriXS1ypNo0mlVlMvhjUpQ=="
)


# --- §7 vectors ---------------------------------------------------------------------------

@pytest.mark.parametrize("sign", [push.signature, push_signature])
def test_official_signature_vectors(sign):
    assert sign(TOKEN, "1714036504", "1514711492") == "f464b24fc39322e44b38aa78f5edd27bd1441696"
    assert sign(TOKEN, "1714037059", "486452656") == "899cf89e464efb63f54ddac96b0a0a235f53aa78"
    assert sign(TOKEN, "1714112445", "415670741") == "6c5c811b55cc85e0e1b54100749188c20beb3f5d"
    assert (sign(TOKEN, "1714112445", "415670741", OFFICIAL_ENCRYPT)
            == "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3")


def test_the_tests_own_decryption_reads_the_official_vector():
    random, message, appid = push_decrypt(OFFICIAL_ENCRYPT, AES_KEY)
    assert random == b"a8eedb185eb2fecf" and len(message) == 167
    assert message == OFFICIAL_MESSAGE and appid == VECTOR_APPID


@pytest.mark.parametrize(
    ("key", "random", "expected", "msg_signature"),
    [
        # The official encrypted answer. Its key is 32 zero bytes, so it cannot tell
        # IV = key[:16] from a zero IV (§7) …
        (AES_KEY, b"707722b803182950",
         "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ==",
         "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1"),
        # … the derived one, with key bytes 00 01 … 1f, can.
        ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", b"0123456789abcdef",
         "4j/AuRx71kQlxVlzbpsMWKQ3Z0QjgbUfhYTcAe+5HouAC+7LimB8zPKE/MsYHLYF6WLitjufF6WU/+TQAmXXlw==",
         "af743b62350f8427f683abe647c2ce0f5992a77e"),
    ],
)
def test_encrypted_answer_vectors_byte_for_byte(key, random, expected, msg_signature):
    encrypted = push.encrypt(b'{"demo_resp":"good luck"}', key, VECTOR_APPID, random=random)
    assert encrypted == expected
    assert push.signature(TOKEN, "1713424427", "415670741", encrypted) == msg_signature


def test_derived_settlement_vector_through_signed_push():
    query, body = push.signed_push(
        SETTLEMENT_EVENT, mode="safe", token=TOKEN, timestamp="1735776001", nonce="1234567890",
        encoding_aes_key=AES_KEY, appid=VECTOR_APPID, random=b"0123456789abcdef",
    )
    assert json.loads(body) == {"ToUserName": "gh_97417a04a28d", "Encrypt": SETTLEMENT_ENCRYPT}
    assert query == {
        "signature": "bf8048e365e9f396d4ea9d00ae341f073c06674f",
        "timestamp": "1735776001",
        "nonce": "1234567890",
        "openid": "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
        "encrypt_type": "aes",
        "msg_signature": "3ca1c233d8eab07518df48d60d510aa313f2ef4e",
    }


def test_plaintext_push_is_the_compact_event_and_three_query_parameters():
    query, body = push.signed_push(SETTLEMENT_EVENT, mode="plaintext", token=TOKEN,
                                   timestamp="1714037059", nonce="486452656")
    assert query == {"signature": "899cf89e464efb63f54ddac96b0a0a235f53aa78",
                     "timestamp": "1714037059", "nonce": "486452656"}
    assert body == json.dumps(SETTLEMENT_EVENT, separators=(",", ":")).encode()


# 16 random + 4 length + message + 18 AppID bytes: 26 makes exactly 64, two blocks of 32.
@pytest.mark.parametrize(("size", "encrypted_bytes"), [(0, 64), (25, 64), (26, 96), (27, 96)])
def test_padding_is_pkcs7_to_32_bytes_a_whole_block_when_aligned(size, encrypted_bytes):
    message = b"x" * size
    encrypted = push.encrypt(message, AES_KEY, VECTOR_APPID)
    assert len(base64.b64decode(encrypted)) == encrypted_bytes
    # The test's own decryption insists on 1..32 bytes of padding.
    assert push_decrypt(encrypted, AES_KEY)[1:] == (message, VECTOR_APPID)


@pytest.mark.parametrize("key", ["A" * 42, "A" * 44, "!" * 43, ""])
def test_bad_encoding_aes_keys_are_refused(key):
    with pytest.raises(ValueError):
        push.aes_key(key)


# --- POST /sim/push -------------------------------------------------------------------------

def send_push(wx, push_receiver, **body):
    spec = {"url": push_receiver.url, "token": TOKEN, **body}
    response = wx.control("POST", "/sim/push", spec)
    assert response.status_code == 200, response.text
    return response.json()


def test_plaintext_push_is_delivered_signed(wx, push_receiver):
    event = {"ToUserName": "gh_x", "FromUserName": PAYER, "CreateTime": 1, "MsgType": "event",
             "Event": "debug_demo", "debug_str": "你好"}
    answer = send_push(wx, push_receiver, event=event)

    assert answer["attempts"][0]["success"] is True and answer["attempts"][0]["status"] == 200
    assert push_event(push_receiver, 0, TOKEN) == event
    assert set(push_receiver.queries[0]) == {"signature", "timestamp", "nonce"}
    assert push_receiver.content_types[0] == "application/json"
    assert "你好".encode() in push_receiver.received[0]  # UTF-8, not \u escapes
    assert wx.control("GET", "/sim/stats").json()["pushes"] == {"sent": 1, "accepted": 1}


def test_safe_mode_push_decrypts_with_the_tests_own_code(wx, push_receiver):
    event = {"ToUserName": "gh_x", "FromUserName": PAYER, "CreateTime": 1, "MsgType": "event",
             "Event": "debug_demo"}
    send_push(wx, push_receiver, event=event, mode="safe", aes_key=SHOP_AES_KEY)

    assert push_event(push_receiver, 0, TOKEN, SHOP_AES_KEY) == event  # AppID is the simulator's
    assert set(json.loads(push_receiver.received[0])) == {"ToUserName", "Encrypt"}


def test_fixed_timestamp_nonce_and_appid_reproduce_the_vectors_signature(wx, push_receiver):
    send_push(wx, push_receiver, event=SETTLEMENT_EVENT, mode="safe", aes_key=AES_KEY,
              appid=VECTOR_APPID, timestamp="1735776001", nonce="1234567890")
    query = push_receiver.queries[0]
    assert query["signature"] == "bf8048e365e9f396d4ea9d00ae341f073c06674f"
    outer = json.loads(push_receiver.received[0])
    _, message, appid = push_decrypt(outer["Encrypt"], AES_KEY)
    assert json.loads(message) == SETTLEMENT_EVENT and appid == VECTOR_APPID


def test_a_reply_other_than_success_is_not_accepted_and_copies_are_identical(wx, push_receiver):
    push_receiver.replies.append((200, b"<xml>no</xml>"))
    answer = send_push(wx, push_receiver, event={"Event": "x"}, copies=2)
    assert [a["success"] for a in answer["attempts"]] == [False, True]
    assert push_receiver.received[0] == push_receiver.received[1]
    assert push_receiver.queries[0] == push_receiver.queries[1]
    assert wx.control("GET", "/sim/stats").json()["pushes"] == {"sent": 2, "accepted": 1}


def test_an_unreachable_shop_is_recorded_not_raised(wx):
    answer = wx.control("POST", "/sim/push", {"url": "http://127.0.0.1:9/wechat/message",
                                              "token": TOKEN, "event": {"Event": "x"}}).json()
    assert answer["attempts"][0]["success"] is False and answer["attempts"][0]["error"]


@pytest.mark.parametrize(
    "spec",
    [
        {"token": TOKEN, "event": {}},
        {"url": "ftp://shop", "token": TOKEN, "event": {}},
        {"url": "http://127.0.0.1:9/m", "event": {}},
        {"url": "http://127.0.0.1:9/m", "token": TOKEN},
        {"url": "http://127.0.0.1:9/m", "token": TOKEN, "event": {}, "settlement": {}},
        {"url": "http://127.0.0.1:9/m", "token": TOKEN, "event": {}, "mode": "compatible"},
        {"url": "http://127.0.0.1:9/m", "token": TOKEN, "event": {}, "mode": "safe"},
        {"url": "http://127.0.0.1:9/m", "token": TOKEN, "event": {}, "mode": "safe",
         "aes_key": "short"},
        {"url": "http://127.0.0.1:9/m", "token": TOKEN, "event": [], "copies": 1},
        {"url": "http://127.0.0.1:9/m", "token": TOKEN, "event": {}, "copies": 0},
    ],
)
def test_push_control_errors(wx, sim, spec):
    assert wx.control("POST", "/sim/push", spec).status_code == 400
    assert sim.pushes == []


# --- trade_manage_order_settlement (§2.8) ---------------------------------------------------

def test_shipping_push_of_a_shipped_trade(wx, push_receiver, shipped_trade, sim):
    tid = shipped_trade["transaction_id"]
    answer = send_push(wx, push_receiver, settlement={"transaction_id": tid},
                       mode="safe", aes_key=SHOP_AES_KEY)

    event = push_event(push_receiver, 0, TOKEN, SHOP_AES_KEY)
    assert event == answer["event"]
    trade, shipment = sim.trades[shipped_trade["_out_trade_no"]], sim.shipments[tid]
    assert event["ToUserName"] == sim.config.original_id and event["FromUserName"] == PAYER
    assert event["MsgType"] == "event" and event["Event"] == "trade_manage_order_settlement"
    assert event["merchant_trade_no"] == shipped_trade["_out_trade_no"]
    assert event["merchant_id"] == trade.params["mch_id"] and event["sub_merchant_id"] == ""
    assert event["pay_time"] == int(trade.paid_at)
    assert event["shipped_time"] == int(shipment.shipped_at)
    assert event["estimated_settlement_time"] == int(shipment.shipped_at) + 10 * 86400
    assert "settlement_time" not in event and "confirm_receive_time" not in event
    assert wx.control("GET", f"/sim/shipping/{tid}").json()["order_state"] == 2


def test_settlement_push_settles_the_trade_first(wx, push_receiver, shipped_trade):
    tid = shipped_trade["transaction_id"]
    wx.control("POST", f"/sim/shipping/{tid}", {"action": "confirm_receive"})
    event = send_push(wx, push_receiver, settlement={"transaction_id": tid, "settled": True})[
        "event"]

    assert event["confirm_receive_method"] == 2
    assert event["confirm_receive_time"] and event["settlement_time"]
    assert "estimated_settlement_time" not in event
    assert push_event(push_receiver, 0, TOKEN) == event
    assert wx.control("GET", f"/sim/shipping/{tid}").json()["order_state"] == 4


def test_settlement_push_of_an_unshipped_trade_is_refused(wx, push_receiver, paid_trade, sim):
    response = wx.control("POST", "/sim/push", {
        "url": push_receiver.url, "token": TOKEN,
        "settlement": {"transaction_id": paid_trade["transaction_id"], "settled": True}})
    assert response.status_code == 409
    assert push_receiver.received == [] and sim.shipments == {}
    unknown = wx.control("POST", "/sim/push", {"url": push_receiver.url, "token": TOKEN,
                                               "settlement": {"transaction_id": "4200"}})
    assert unknown.status_code == 404


def test_the_appid_inside_is_the_simulators(wx, push_receiver):
    send_push(wx, push_receiver, event={"Event": "x"}, mode="safe", aes_key=SHOP_AES_KEY)
    outer = json.loads(push_receiver.received[0])
    assert push_decrypt(outer["Encrypt"], SHOP_AES_KEY)[2] == APPID
