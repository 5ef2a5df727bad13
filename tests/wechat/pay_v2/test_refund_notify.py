"""Decrypting a refund notify's req_info (docs/protocol/wechat-pay-v2.md §7.3) with the official
vector."""

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.wx import REQ_INFO_VECTOR, REQ_INFO_VECTOR_KEY
from wechat.pay_v2 import ReqInfoError, WxPayError, decrypt_req_info
from wechat.pay_v2.refund_notify import req_info_key

DECRYPTED = {
    "out_refund_no": "1234",
    "out_trade_no": "2020010418301551404339261814",
    "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
    "refund_fee": "1",
    "refund_id": "50300103182020010413419046597",
    "refund_recv_accout": "招商银行信用卡8915",
    "refund_request_source": "API",
    "refund_status": "SUCCESS",
    "settlement_refund_fee": "1",
    "settlement_total_fee": "1",
    "success_time": "2020-01-04 18:34:24",
    "total_fee": "1",
    "transaction_id": "4200000483202001042069747825",
}


def raw_decrypt(req_info: str, key: str = REQ_INFO_VECTOR_KEY) -> bytes:
    """AES without unpadding, written from the notes, to build damaged inputs."""
    aes_key = hashlib.md5(key.encode()).hexdigest().encode()
    decryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).decryptor()  # noqa: S305
    return decryptor.update(base64.b64decode(req_info)) + decryptor.finalize()


def encrypt(plaintext_padded: bytes, key: str = REQ_INFO_VECTOR_KEY) -> str:
    aes_key = hashlib.md5(key.encode()).hexdigest().encode()
    encryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()  # noqa: S305
    return base64.b64encode(encryptor.update(plaintext_padded) + encryptor.finalize()).decode()


def test_the_sheets_vector_decrypts_to_its_fields():
    assert decrypt_req_info(REQ_INFO_VECTOR, REQ_INFO_VECTOR_KEY) == DECRYPTED


def test_the_key_is_the_lowercase_hex_md5_as_32_ascii_bytes():
    assert req_info_key(REQ_INFO_VECTOR_KEY) == b"63dfc0c1f53d9bc83a8fdc365b8141da"


def test_the_vectors_padding_is_five_bytes():
    assert raw_decrypt(REQ_INFO_VECTOR)[-5:] == b"\x05" * 5


def test_line_wrapped_base64_is_accepted():
    wrapped = "\n".join(REQ_INFO_VECTOR[i : i + 76] for i in range(0, len(REQ_INFO_VECTOR), 76))
    assert decrypt_req_info(wrapped, REQ_INFO_VECTOR_KEY) == DECRYPTED


def test_a_payload_encrypted_with_another_key_is_refused():
    forged = encrypt(raw_decrypt(REQ_INFO_VECTOR), key="0" * 32)
    with pytest.raises(ReqInfoError):
        decrypt_req_info(forged, REQ_INFO_VECTOR_KEY)


def test_the_right_payload_with_the_wrong_key_is_refused():
    with pytest.raises(ReqInfoError):
        decrypt_req_info(REQ_INFO_VECTOR, "x" * 32)


@pytest.mark.parametrize(
    "req_info",
    [
        "",
        "not base64 at all!",
        "QUJD",  # valid base64, 3 bytes: not whole AES blocks
        base64.b64encode(b"\x00" * 15).decode(),
        "\uff15\uff11A27s9L",  # fullwidth digits: not ASCII
        REQ_INFO_VECTOR[:-4],  # truncated
    ],
)
def test_garbage_is_refused(req_info):
    with pytest.raises(ReqInfoError):
        decrypt_req_info(req_info, REQ_INFO_VECTOR_KEY)


@pytest.mark.parametrize(
    ("req_info", "reason"),
    [
        ("", "req_info is missing"),
        (None, "req_info is missing"),
        (["QUJD"], "req_info is missing"),  # not text: a JSON caller may hand over anything
        ("QUJD", "req_info is not a whole number of AES blocks"),
        ("not base64 at all!", "req_info is not base64"),
    ],
)
def test_each_refusal_says_what_was_wrong(req_info, reason):
    # The reason reaches the ledger's detail, which staff read.
    with pytest.raises(ReqInfoError) as refused:
        decrypt_req_info(req_info, REQ_INFO_VECTOR_KEY)

    assert str(refused.value) == reason


def test_tampered_ciphertext_is_refused():
    data = bytearray(base64.b64decode(REQ_INFO_VECTOR))
    data[-1] ^= 0x01  # the last block carries the padding
    with pytest.raises(ReqInfoError):
        decrypt_req_info(base64.b64encode(bytes(data)).decode(), REQ_INFO_VECTOR_KEY)


@pytest.mark.parametrize(
    "last_block",
    [b"\x00" * 16, b"\x11" * 16, b"A" * 12 + b"\x03\x04\x04\x04"],
    ids=["zero", "longer-than-a-block", "inconsistent"],
)
def test_bad_pkcs7_padding_is_refused(last_block):
    body = b"<root><a>1</a></root>"
    plaintext = body + b" " * (-len(body) % 16) + last_block
    with pytest.raises(ReqInfoError, match="padding"):
        decrypt_req_info(encrypt(plaintext), REQ_INFO_VECTOR_KEY)


@pytest.mark.parametrize(
    "document",
    [
        b"<xml><a>1</a></xml>",  # the payment envelope is not the req_info root
        b"<root><a><b>1</b></a></root>",
        b'<!DOCTYPE root [<!ENTITY x "y">]><root><a>&x;</a></root>',
        b"<root><a>1</a>",
        "<root><a>caf\u00e9</a></root>".encode("latin-1"),
    ],
)
def test_a_decrypted_document_that_is_not_a_flat_root_is_refused(document):
    pad = 16 - len(document) % 16
    with pytest.raises(ReqInfoError):
        decrypt_req_info(encrypt(document + bytes([pad]) * pad), REQ_INFO_VECTOR_KEY)


def test_refusals_are_wxpay_errors_and_never_echo_the_key():
    with pytest.raises(WxPayError) as caught:
        decrypt_req_info(REQ_INFO_VECTOR, "secret-key-" + "k" * 21)
    assert "secret-key" not in str(caught.value)
