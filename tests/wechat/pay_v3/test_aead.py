# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import base64

import pytest

from tests.wx_v3 import (
    RESOURCE_VECTOR,
    RESOURCE_VECTOR_KEY,
    RESOURCE_VECTOR_PLAINTEXT,
    encrypt_resource,
)
from wechat.pay_v3 import DecryptError, check_apiv3_key, decrypt, decrypt_resource

KEY = RESOURCE_VECTOR_KEY
OTHER_KEY = "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4"


def test_the_notes_vector_decrypts_to_the_transaction():
    """§13.4 (derived): the §7.3 transaction under the made-up APIv3 key."""
    assert decrypt_resource(RESOURCE_VECTOR, KEY) == RESOURCE_VECTOR_PLAINTEXT
    assert len(RESOURCE_VECTOR_PLAINTEXT) == 423


def test_decrypt_takes_nonce_and_aad_as_text_not_base64():
    plaintext = decrypt(
        KEY,
        nonce=RESOURCE_VECTOR["nonce"],
        associated_data="transaction",
        ciphertext=RESOURCE_VECTOR["ciphertext"],
    )
    assert plaintext == RESOURCE_VECTOR_PLAINTEXT


@pytest.mark.parametrize("aad", ["", None])
def test_empty_or_absent_associated_data_means_no_aad(aad):
    resource = encrypt_resource(KEY, b'{"a":1}', associated_data="")
    if aad is None:
        del resource["associated_data"]
    assert decrypt_resource(resource, KEY) == b'{"a":1}'


def test_wrong_key_is_refused():
    with pytest.raises(DecryptError, match="APIv3 key"):
        decrypt_resource(RESOURCE_VECTOR, OTHER_KEY)


def test_tampered_associated_data_is_refused():
    """§13.4's negative check: a wrong AAD fails authentication."""
    for aad in ("certificate", "", "transaction "):
        with pytest.raises(DecryptError):
            decrypt_resource({**RESOURCE_VECTOR, "associated_data": aad}, KEY)


def test_tampered_nonce_is_refused():
    with pytest.raises(DecryptError):
        decrypt_resource({**RESOURCE_VECTOR, "nonce": "fdasflkja485"}, KEY)


@pytest.mark.parametrize("position", [0, 200, -17, -1])
def test_tampered_ciphertext_or_tag_is_refused(position):
    data = bytearray(base64.b64decode(RESOURCE_VECTOR["ciphertext"]))
    data[position] ^= 0x01
    tampered = {**RESOURCE_VECTOR, "ciphertext": base64.b64encode(bytes(data)).decode()}
    with pytest.raises(DecryptError):
        decrypt_resource(tampered, KEY)


def test_truncated_ciphertext_is_refused():
    data = base64.b64decode(RESOURCE_VECTOR["ciphertext"])
    for cut in (data[:-1], data[:16], data[:15], b""):
        resource = {**RESOURCE_VECTOR, "ciphertext": base64.b64encode(cut).decode()}
        with pytest.raises(DecryptError):
            decrypt_resource(resource, KEY)


@pytest.mark.parametrize(
    "change",
    [
        {"algorithm": "AEAD_AES_128_GCM"},
        {"algorithm": None},
        {"ciphertext": "not base64!"},
        {"ciphertext": None},
        {"ciphertext": 12},
        {"ciphertext": "A" * 300_000},
        {"nonce": "short"},
        {"nonce": "fdasflkja4840"},
        {"nonce": base64.b64encode(b"fdasflkja484").decode()},
        {"nonce": None},
        {"associated_data": 1},
    ],
)
def test_malformed_resources_are_refused_as_decrypt_errors(change):
    with pytest.raises(DecryptError):
        decrypt_resource({**RESOURCE_VECTOR, **change}, KEY)


def test_a_resource_that_is_not_an_object_is_refused():
    with pytest.raises(DecryptError):
        decrypt_resource(["not", "an", "object"], KEY)


@pytest.mark.parametrize("key", ["", "short", KEY + "x", KEY[:31] + "\uff16", None])
def test_the_apiv3_key_must_be_32_ascii_characters(key):
    with pytest.raises(ValueError, match="32 ASCII"):
        check_apiv3_key(key)


def test_error_messages_never_show_the_key():
    with pytest.raises(DecryptError) as caught:
        decrypt_resource(RESOURCE_VECTOR, OTHER_KEY)
    assert OTHER_KEY not in str(caught.value)
    assert KEY not in str(caught.value)
