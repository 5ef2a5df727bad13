"""Message push: signatures, decryption and the event body against the vectors of §7.

A bare §n in this file is a section of docs/protocol/miniprogram-server-api.md. Every vector
below is copied from the notes, not computed by the code under test; ciphertexts the vectors
do not cover (bad padding, a lying length) are made here with ``cryptography`` directly.
"""

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wechat.miniprogram import (
    PushAesKeyInvalid,
    PushAppIdMismatch,
    PushDecryptError,
    PushError,
    PushMalformed,
    decrypt_message,
    parse_event,
    push_aes_key,
    verify_msg_signature,
    verify_signature,
)
from wechat.miniprogram.push import decrypt_envelope, encrypted_field

# §7: the official example (its EncodingAESKey decodes to 32 zero bytes).
TOKEN, AES_KEY, APPID = "AAAAA", "A" * 43, "wxba5fad812f8e6fb9"
# §7, derived: key bytes 00 01 … 1f, so IV = key[:16] is not zeros.
IV_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
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
ANSWER_ENCRYPT = (
    "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ=="
)
IV_ENCRYPT = (
    "4j/AuRx71kQlxVlzbpsMWKQ3Z0QjgbUfhYTcAe+5HouAC+7LimB8zPKE/MsYHLYF6WLitjufF6WU/+TQAmXXlw=="
)
ZERO_IV_ENCRYPT = (
    "2MlXWOM1PlMPpSvRDnO5hu0ZzZBALictneXk/jWxb/CKOgzhzZ1P316TzQlj8bapU6Gm1Q/nR3g3nrB6dcDcXw=="
)
SETTLEMENT_MESSAGE = (
    b'{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY",'
    b'"CreateTime":1735776000,"MsgType":"event","Event":"trade_manage_order_settlement",'
    b'"transaction_id":"4200002501202501018123456789","merchant_id":"1900000001",'
    b'"sub_merchant_id":"","merchant_trade_no":"T20250101000000001","pay_time":1735689630,'
    b'"shipped_time":1735776000,"estimated_settlement_time":1736640000}'
)
SETTLEMENT_ENCRYPT = (
    "uMMzGtqcnpOzXOYBwDQNrRgv2iSawbvFGZAIn42fmAk+VL06G6iprNXrwlwvwOoKYBgT0Jk5T+tTynBhNfKBUMu85JUQ"
    "EhOK256tBBQuE0ioeSn/LxePqvyw9trtG9Hh74aPsWsaBCGzJnowsAnLAhKWRrcUMDfRymp/jsBpL+SmtVdQYoD+yvOJ"
    "26h49BF8ArBAyjav9jUmxVqdZBqwFdBzjX4LE4PoAEaODvTmHL1qX5XExFWI/0v01lOzgOyfuseKtsvqgGE6P0qREpbY"
    "mPYu3tedR88jZMMFy1/ZoqTUegLwgF9xjoBQ6OMeMYRg5oYliQxD1P/TQvZifFdC/Ot7xaM8nOzcmoFTOPeadJy8D684"
    "Hmj+gCybHEe5tFj8m82JvC0CXyRTbGpl3wMpcQoab0ve71QO2dvjT9vrL5b5Rxn1hE+cnMF2RkqUvtlIor/5bQywIwzU"
    "nKXfMyj34Qh2CfFiwaWVCHlea2XpKrN6TzdXqonugjDQ2sHanXnuF6M/BHSdX2r2/E7lqFCEQf3MZ44MNryWjFHblG7A"
    "09xIH1/3OCq+ObR1ILYdJqRGuriXS1ypNo0mlVlMvhjUpQ=="
)


def sealed(plain: bytes, encoding_aes_key: str = IV_KEY) -> str:
    """``plain`` (already padded, or deliberately not) encrypted as §3.4 says, in Base64."""
    key = base64.b64decode(encoding_aes_key + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def layout(message: bytes, appid: str = APPID, length: int | None = None) -> bytes:
    """random(16) ‖ length(4, big-endian) ‖ message ‖ AppID, unpadded."""
    size = len(message) if length is None else length
    return b"0123456789abcdef" + size.to_bytes(4, "big") + message + appid.encode()


def pkcs7(data: bytes, block: int = 32) -> bytes:
    pad = block - len(data) % block
    return data + bytes([pad]) * pad


# -- signatures (§3.2, §3.3, §3.4) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "nonce", "signature"),
    [
        ("1714036504", "1514711492", "f464b24fc39322e44b38aa78f5edd27bd1441696"),  # GET
        ("1714037059", "486452656", "899cf89e464efb63f54ddac96b0a0a235f53aa78"),  # plaintext
        ("1714112445", "415670741", "6c5c811b55cc85e0e1b54100749188c20beb3f5d"),  # safe
        ("1735776001", "1234567890", "bf8048e365e9f396d4ea9d00ae341f073c06674f"),  # derived
    ],
)
def test_signature_vectors_verify(timestamp, nonce, signature):
    assert verify_signature(TOKEN, timestamp, nonce, signature)


@pytest.mark.parametrize(
    ("token", "timestamp", "nonce", "signature"),
    [
        ("AAAAB", "1714036504", "1514711492", "f464b24fc39322e44b38aa78f5edd27bd1441696"),
        (TOKEN, "1714036505", "1514711492", "f464b24fc39322e44b38aa78f5edd27bd1441696"),
        (TOKEN, "1714036504", "1514711493", "f464b24fc39322e44b38aa78f5edd27bd1441696"),
        (TOKEN, "1714036504", "1514711492", "f464b24fc39322e44b38aa78f5edd27bd1441697"),
        (TOKEN, "1714036504", "1514711492", "F464B24FC39322E44B38AA78F5EDD27BD1441696"),
        (TOKEN, "1714036504", "1514711492", ""),
        (TOKEN, "1714036504", "1514711492", "签名"),  # not ASCII: False, not TypeError
        ("", "1714036504", "1514711492", "f464b24fc39322e44b38aa78f5edd27bd1441696"),
    ],
)
def test_signature_fails_for_any_other_input(token, timestamp, nonce, signature):
    assert not verify_signature(token, timestamp, nonce, signature)


def test_no_token_verifies_nothing_not_even_the_signature_of_the_empty_token():
    # sha1 over ("", timestamp, nonce) is computable by anyone.
    forged = hashlib.sha1(b"1714036504" + b"1514711492").hexdigest()
    assert not verify_signature("", "1714036504", "1514711492", forged)


@pytest.mark.parametrize(
    ("timestamp", "nonce", "encrypt", "msg_signature"),
    [
        ("1714112445", "415670741", OFFICIAL_ENCRYPT, "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"),
        ("1713424427", "415670741", ANSWER_ENCRYPT, "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1"),
        ("1713424427", "415670741", IV_ENCRYPT, "af743b62350f8427f683abe647c2ce0f5992a77e"),
        (
            "1735776001",
            "1234567890",
            SETTLEMENT_ENCRYPT,
            "3ca1c233d8eab07518df48d60d510aa313f2ef4e",
        ),
    ],
)
def test_msg_signature_vectors_verify_and_cover_the_ciphertext(
    timestamp, nonce, encrypt, msg_signature
):
    assert verify_msg_signature(TOKEN, timestamp, nonce, encrypt, msg_signature)
    assert not verify_msg_signature(TOKEN, timestamp, nonce, encrypt[:-4] + "AAA=", msg_signature)
    assert not verify_msg_signature("AAAAB", timestamp, nonce, encrypt, msg_signature)
    # The plain signature is not a msg_signature (§3.4 step 1).
    assert not verify_msg_signature(TOKEN, timestamp, nonce, encrypt, "0" * 40)


# -- decryption (§3.4 steps 2 to 4) ----------------------------------------------------------


def test_official_vector_decrypts_to_its_message():
    assert decrypt_message(AES_KEY, OFFICIAL_ENCRYPT, APPID) == OFFICIAL_MESSAGE
    opened = decrypt_envelope(AES_KEY, OFFICIAL_ENCRYPT)
    assert (opened.random, len(opened.message), opened.appid) == (b"a8eedb185eb2fecf", 167, APPID)


def test_official_answer_and_derived_settlement_decrypt():
    assert decrypt_message(AES_KEY, ANSWER_ENCRYPT, APPID) == b'{"demo_resp":"good luck"}'
    assert decrypt_message(AES_KEY, SETTLEMENT_ENCRYPT, APPID) == SETTLEMENT_MESSAGE
    assert decrypt_envelope(AES_KEY, ANSWER_ENCRYPT).random == b"707722b803182950"


def test_the_iv_is_the_first_16_key_bytes():
    # §7: a wrong IV only garbles the random prefix; the derived vector's prefix is known.
    opened = decrypt_envelope(IV_KEY, IV_ENCRYPT)
    assert (opened.random, opened.message) == (b"0123456789abcdef", b'{"demo_resp":"good luck"}')
    zero_iv = decrypt_envelope(IV_KEY, ZERO_IV_ENCRYPT)
    assert zero_iv.message == b'{"demo_resp":"good luck"}'
    assert zero_iv.random != b"0123456789abcdef"


def test_another_appid_inside_the_ciphertext_is_refused():
    with pytest.raises(PushAppIdMismatch) as refused:
        decrypt_message(AES_KEY, OFFICIAL_ENCRYPT, "wxd930ea5d5a258f4f")
    assert isinstance(refused.value, PushError)
    assert refused.value.appid == APPID


def test_an_appid_that_only_starts_like_ours_is_refused():
    encrypt = sealed(pkcs7(layout(b"{}", appid=APPID + "x")))
    with pytest.raises(PushAppIdMismatch):
        decrypt_message(IV_KEY, encrypt, APPID)


def test_the_wrong_key_is_refused_not_garbage():
    with pytest.raises(PushDecryptError):
        decrypt_message(IV_KEY, OFFICIAL_ENCRYPT, APPID)


@pytest.mark.parametrize(
    "plain",
    [
        layout(b"{}") + bytes([0]) * 24,  # pad 0
        layout(b"{}") + bytes([33]) * 24,  # pad over 32
        layout(b"{}") + b"\x05" * 23 + b"\x18",  # pad bytes that disagree
        pkcs7(layout(b"{}"), block=16),  # AES's 16, not 32: 48 bytes, not whole 32s
    ],
    ids=["zero", "over-32", "inconsistent", "block-16"],
)
def test_bad_padding_is_refused(plain):
    assert len(plain) % 16 == 0
    encrypt = sealed(plain)
    with pytest.raises(PushDecryptError):
        decrypt_message(IV_KEY, encrypt, APPID)


@pytest.mark.parametrize("size", [0, 1, 25, 26, 27, 31, 32, 33, 200])
def test_every_message_length_round_trips_with_32_byte_padding(size):
    message = bytes(range(256))[:size] if size <= 256 else b"x" * size
    assert decrypt_message(IV_KEY, sealed(pkcs7(layout(message))), APPID) == message


def test_a_length_beyond_the_plaintext_is_refused():
    with pytest.raises(PushDecryptError, match="length"):
        decrypt_message(IV_KEY, sealed(pkcs7(layout(b"{}", length=10_000))), APPID)


@pytest.mark.parametrize(
    "encrypt",
    [
        "",
        "not base64!",
        "QUJD",  # 3 bytes: not whole AES blocks
        base64.b64encode(b"\x00" * 16).decode(),  # one AES block: not a whole 32-byte block
        base64.b64encode(b"\x00" * 48).decode(),
        OFFICIAL_ENCRYPT[:-4],  # cut short
        "密文",
    ],
)
def test_ciphertext_that_is_not_whole_blocks_of_base64_is_refused(encrypt):
    with pytest.raises(PushDecryptError):
        decrypt_message(AES_KEY, encrypt, APPID)


def test_a_plaintext_too_short_for_its_header_is_refused():
    with pytest.raises(PushDecryptError):
        decrypt_message(IV_KEY, sealed(b"0123456789" + bytes([22]) * 22), APPID)


@pytest.mark.parametrize(
    "encoding_aes_key",
    ["", "A" * 42, "A" * 44, "!" * 43, "A" * 42 + "=", None, "中" * 43],
)
def test_an_encoding_aes_key_that_is_not_43_base64_characters_is_refused(encoding_aes_key):
    with pytest.raises(PushAesKeyInvalid):
        push_aes_key(encoding_aes_key)
    with pytest.raises(PushAesKeyInvalid):
        decrypt_message(encoding_aes_key, OFFICIAL_ENCRYPT, APPID)


def test_push_aes_key_is_the_32_decoded_bytes():
    assert push_aes_key(IV_KEY) == bytes(range(32))
    assert push_aes_key(AES_KEY) == bytes(32)


# -- the body (§3.4, §3.5) --------------------------------------------------------------------


def test_encrypted_field_reads_the_safe_mode_body():
    body = b'{"ToUserName":"gh_97417a04a28d","Encrypt":"' + OFFICIAL_ENCRYPT.encode() + b'"}'
    assert encrypted_field(body) == OFFICIAL_ENCRYPT


@pytest.mark.parametrize(
    "body",
    [b"", b"<xml></xml>", b"[]", b'{"ToUserName":"x"}', b'{"Encrypt":5}', b'{"Encrypt":""}',
     b"\xff\xfe", b'{"Encrypt":"a"', b"null"],
)
def test_encrypted_field_refuses_a_body_without_it(body):
    with pytest.raises(PushMalformed):
        encrypted_field(body)


def test_parse_event_reads_the_official_message():
    event = parse_event(OFFICIAL_MESSAGE)
    assert (event.event, event.create_time, event.from_user) == (
        "debug_demo",
        1714112445,
        "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
    )
    assert event.transaction_id == ""
    assert event.payload["debug_str"] == "hello world"


def test_parse_event_reads_the_settlement_event():
    event = parse_event(SETTLEMENT_MESSAGE)
    assert (event.event, event.transaction_id, event.create_time) == (
        "trade_manage_order_settlement",
        "4200002501202501018123456789",
        1735776000,
    )


@pytest.mark.parametrize("create_time", ['"1735776000"', "1735776000", '" 1735776000 "'])
def test_create_time_may_be_a_number_or_a_string(create_time):
    body = b'{"MsgType":"event","Event":"x","CreateTime":' + create_time.encode() + b"}"
    assert parse_event(body).create_time == 1735776000


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1]",
        b'"text"',
        b'{"MsgType":"event","Event":"x"}',  # no CreateTime
        b'{"MsgType":"event","Event":"x","CreateTime":"soon"}',
        b'{"MsgType":"event","Event":"x","CreateTime":1.5}',
        b'{"MsgType":"event","Event":"x","CreateTime":true}',
        b'{"MsgType":"event","Event":"x","CreateTime":-1}',
        b'{"MsgType":"event","Event":"x","CreateTime":99999999999999999999}',
        b'{"MsgType":"event","Event":5,"CreateTime":1}',
        b'{"MsgType":"event","Event":"x","CreateTime":1,"transaction_id":42}',
        b'{"MsgType":"event","Event":"' + b"e" * 65 + b'","CreateTime":1}',
        b"\xff\xfe{}",
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,  # nesting that would exhaust the stack
    ],
)
def test_parse_event_refuses_what_is_not_an_event(body):
    with pytest.raises(PushMalformed):
        parse_event(body)
