"""Decrypting a refund notify's req_info (protocol sheet §7.3) with the official vector."""

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from payments.wxpay import ReqInfoError, WxPayError, decrypt_req_info
from payments.wxpay.refund_notify import req_info_key

# §7.3 test vector (wechatpy's test-suite), copied verbatim from the sheet.
API_KEY = "OF4Ne3znh8KqL0V4NqmALQa0uXMYKcEk"
REQ_INFO = (
    "51A27s9LxbaEv52nBOrqa0FCs3HVIM31Wc3BpNqSCP5MQlS8HL1Vl7mZ21043B7PZy7adtOZGtZv44lGl0U8JXlV"
    "FL4Ltxsw6+pACjZBB0Qi1LUDjFlP2IyTxYX4eC57kxnCphDdIyRkU67kOWW/HN/efggTUlaPJkoL5kVe9Y1MZF55"
    "IHR4lwGI7WtVLtxATX1tkAVZF+/ri0WlPXo9+GkqeB2/id6Ozw09Tqp8C/TKbmKBpRhTCRU2TzfQoLa6fjbgETFH"
    "J795aEMyUZPQYbbsz6U9Rj9lUzEh8+Oc8KYTXa9zVk+nnFr82+yjffb3d36ylTe0y/VmYf90rf9cbiJQdM00zZ8Q"
    "a99SlMTs2wjOO4Mi4Btlg1PebsLF8TkqbSZkRJDGs61UunUB8Km1b/VeBxXuv4D3H7DiVZ9Fj7lq2j07zFDpxxlh"
    "hen7kZvMWWO3lrfFpA9c4eFOqfF9SxcU9nBmHfDD1g/dsrMl6+a71xQHJ/gn80fZOefUBv92ggqutsuJ4gd4Oqkm"
    "O0XUs8e4XQyLpra+LvpmahsU5lBIZuQcMq3FHrqe8hXTfp3+3qym2wGfvPI75jx41VZwmBQy9izB1Id+A5lUeXC5"
    "QJy+ryDu/dWkhB+aMjkElaI/Epmcc/IEPaI73W6Hc58hNednOM536rPnn+GDc98PdGszpLTjmaZSu8dtqwPaym66"
    "yRqFQowzFoBbooik57iHUFBCeWya7XcXYL9WKhRF3uIZM+Kfv9/Zs2pF+w9/EJpltuzPpT1GP2VTMSHz45zwphFl"
    "S2lX8wHyZ+k9n2dptzQqpOCPedt5iQAmAe1oNQMxNdPDH9g68x9UzWD1kfK/dPO+3NPAh0XG+io4x15fIknNf7JL"
    "jpAuWicMMzCdwC4hhqeYOzQ+pC9f2xJXi5YViNKIZY69oO8eoHYRitLZrHLgx3oB2zimmqX6BI+DMklKAzAqqgGm"
    "bFxcVTvxZB6cMCx+H7TTWXnjAG+6A3SrCcxg0l5+UB93pkAYR7SVJ+VaZoiBqlqnZvb7IM17n9XaaFntlzvbbFCI"
    "a7OnOQb5Lvw="
)
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


def raw_decrypt(req_info: str, key: str = API_KEY) -> bytes:
    """AES without unpadding, written from the sheet, to build damaged inputs."""
    aes_key = hashlib.md5(key.encode()).hexdigest().encode()
    decryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).decryptor()  # noqa: S305
    return decryptor.update(base64.b64decode(req_info)) + decryptor.finalize()


def encrypt(plaintext_padded: bytes, key: str = API_KEY) -> str:
    aes_key = hashlib.md5(key.encode()).hexdigest().encode()
    encryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()  # noqa: S305
    return base64.b64encode(encryptor.update(plaintext_padded) + encryptor.finalize()).decode()


def test_the_sheets_vector_decrypts_to_its_fields():
    assert decrypt_req_info(REQ_INFO, API_KEY) == DECRYPTED


def test_the_key_is_the_lowercase_hex_md5_as_32_ascii_bytes():
    assert req_info_key(API_KEY) == b"63dfc0c1f53d9bc83a8fdc365b8141da"


def test_the_vectors_padding_is_five_bytes():
    assert raw_decrypt(REQ_INFO)[-5:] == b"\x05" * 5


def test_line_wrapped_base64_is_accepted():
    wrapped = "\n".join(REQ_INFO[i : i + 76] for i in range(0, len(REQ_INFO), 76))
    assert decrypt_req_info(wrapped, API_KEY) == DECRYPTED


def test_a_payload_encrypted_with_another_key_is_refused():
    forged = encrypt(raw_decrypt(REQ_INFO), key="0" * 32)
    with pytest.raises(ReqInfoError):
        decrypt_req_info(forged, API_KEY)


def test_the_right_payload_with_the_wrong_key_is_refused():
    with pytest.raises(ReqInfoError):
        decrypt_req_info(REQ_INFO, "x" * 32)


@pytest.mark.parametrize(
    "req_info",
    [
        "",
        "not base64 at all!",
        "QUJD",  # valid base64, 3 bytes: not whole AES blocks
        base64.b64encode(b"\x00" * 15).decode(),
        "\uff15\uff11A27s9L",  # fullwidth digits: not ASCII
        REQ_INFO[:-4],  # truncated
    ],
)
def test_garbage_is_refused(req_info):
    with pytest.raises(ReqInfoError):
        decrypt_req_info(req_info, API_KEY)


def test_tampered_ciphertext_is_refused():
    data = bytearray(base64.b64decode(REQ_INFO))
    data[-1] ^= 0x01  # the last block carries the padding
    with pytest.raises(ReqInfoError):
        decrypt_req_info(base64.b64encode(bytes(data)).decode(), API_KEY)


@pytest.mark.parametrize(
    "last_block",
    [b"\x00" * 16, b"\x11" * 16, b"A" * 12 + b"\x03\x04\x04\x04"],
    ids=["zero", "longer-than-a-block", "inconsistent"],
)
def test_bad_pkcs7_padding_is_refused(last_block):
    body = b"<root><a>1</a></root>"
    plaintext = body + b" " * (-len(body) % 16) + last_block
    with pytest.raises(ReqInfoError, match="padding"):
        decrypt_req_info(encrypt(plaintext), API_KEY)


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
        decrypt_req_info(encrypt(document + bytes([pad]) * pad), API_KEY)


def test_refusals_are_wxpay_errors_and_never_echo_the_key():
    with pytest.raises(WxPayError) as caught:
        decrypt_req_info(REQ_INFO, "secret-key-" + "k" * 21)
    assert "secret-key" not in str(caught.value)
