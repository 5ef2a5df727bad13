# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.
"""Rules of aead.py a mutation run found unpinned: the reason each refusal gives (a notify's
reason is kept on its ledger row; a certificate's is logged), never showing the key."""

import base64

import pytest

from tests.wx_v3 import RESOURCE_VECTOR, RESOURCE_VECTOR_KEY
from wechat.pay_v3 import DecryptError, check_apiv3_key, decrypt_resource
from wechat.pay_v3.aead import MAX_CIPHERTEXT_CHARS, TAG_BYTES

KEY = RESOURCE_VECTOR_KEY


@pytest.mark.parametrize(
    "key, reason",
    [
        (None, "the APIv3 key must be 32 ASCII characters"),
        (KEY[:31] + "\uff16", "the APIv3 key must be 32 ASCII characters"),
        ("short", "the APIv3 key must be exactly 32 ASCII characters"),
        (KEY + "x", "the APIv3 key must be exactly 32 ASCII characters"),
    ],
)
def test_an_apiv3_key_refusal_says_why(key, reason):
    with pytest.raises(ValueError) as caught:
        check_apiv3_key(key)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"nonce": "short"}, "the nonce must be 12 bytes"),
        ({"associated_data": 1}, "associated_data is not text"),
        ({"ciphertext": None}, "ciphertext missing or too long"),
        ({"ciphertext": "not base64!"}, "ciphertext is not Base64"),
        ({"ciphertext": "QUJD"}, "ciphertext is shorter than its tag"),
        ({"algorithm": "AEAD_AES_128_GCM"}, "algorithm 'AEAD_AES_128_GCM' is not AEAD_AES_256_GCM"),
    ],
)
def test_a_resource_refusal_says_why(change, reason):
    with pytest.raises(DecryptError) as caught:
        decrypt_resource({**RESOURCE_VECTOR, **change}, KEY)
    assert str(caught.value) == reason


def test_a_resource_that_is_not_an_object_says_so():
    with pytest.raises(DecryptError) as caught:
        decrypt_resource("resource", KEY)
    assert str(caught.value) == "resource is not an object"


AUTH_FAILED = (
    "AES-GCM authentication failed: wrong APIv3 key (reset on the merchant platform?)"
    " or tampered ciphertext, associated_data or nonce"
)


@pytest.mark.parametrize(
    "chars, reason",
    [
        (MAX_CIPHERTEXT_CHARS, AUTH_FAILED),  # the longest accepted: it reaches AES-GCM
        (MAX_CIPHERTEXT_CHARS + 4, "ciphertext missing or too long"),
    ],
)
def test_the_longest_ciphertext_accepted(chars, reason):
    with pytest.raises(DecryptError) as caught:
        decrypt_resource({**RESOURCE_VECTOR, "ciphertext": "A" * chars}, KEY)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    "size, reason",
    [
        (TAG_BYTES - 1, "ciphertext is shorter than its tag"),
        (TAG_BYTES, AUTH_FAILED),  # a tag alone: an empty plaintext, checked by GCM
    ],
)
def test_a_ciphertext_holds_at_least_its_tag(size, reason):
    ciphertext = base64.b64encode(b"\x00" * size).decode()
    with pytest.raises(DecryptError) as caught:
        decrypt_resource({**RESOURCE_VECTOR, "ciphertext": ciphertext}, KEY)
    assert str(caught.value) == reason


@pytest.mark.parametrize("stray", ["\n", " ", "*", "-"])
def test_a_ciphertext_with_a_stray_character_is_not_base64_even_if_the_rest_decrypts(stray):
    ciphertext = RESOURCE_VECTOR["ciphertext"]
    tampered = ciphertext[:8] + stray + ciphertext[8:]
    with pytest.raises(DecryptError) as caught:
        decrypt_resource({**RESOURCE_VECTOR, "ciphertext": tampered}, KEY)
    assert str(caught.value) == "ciphertext is not Base64"


def test_an_unknown_algorithm_is_echoed_to_forty_characters_at_most():
    with pytest.raises(DecryptError) as caught:
        decrypt_resource({**RESOURCE_VECTOR, "algorithm": "A" * 40 + "BCD"}, KEY)
    assert str(caught.value) == f"algorithm {'A' * 40!r} is not AEAD_AES_256_GCM"
