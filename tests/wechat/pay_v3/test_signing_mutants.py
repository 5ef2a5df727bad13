# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.
"""Rules of signing.py a mutation run found unpinned: the reason a merchant key is refused
with (shown when the shop starts with a bad WECHAT_MCH_PRIVATE_KEY_PATH), never its bytes."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.wx_v3 import private_pem
from wechat.pay_v3 import authorization, load_private_key


@pytest.mark.parametrize("pem", ["not a key", b"not a key", "é"])
def test_garbage_is_refused_as_not_a_pem_key(pem):
    with pytest.raises(ValueError) as caught:
        load_private_key(pem)
    assert str(caught.value) == "not an unencrypted PEM private key"


def test_a_key_that_is_not_rsa_is_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError) as caught:
        load_private_key(pem)
    assert str(caught.value) == "the merchant key must be an RSA private key"


def test_a_short_key_is_refused_with_the_size_needed():
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with pytest.raises(ValueError) as caught:
        load_private_key(private_pem(short))
    assert str(caught.value) == "the merchant key must have at least 2048 bits"


@pytest.mark.parametrize(
    "field, value", [("mchid", '19",x="1'), ("serial_no", "AB CD"), ("nonce", "a,b")]
)
def test_a_header_value_refusal_names_the_field(merchant_key, field, value):
    args = {"mchid": "1900000001", "serial_no": "AB", "nonce": "N", field: value}
    with pytest.raises(ValueError) as caught:
        authorization(
            private_key=merchant_key, method="GET", url="/v3/x", body=b"", timestamp=1, **args
        )
    assert str(caught.value) == f"{field} may hold only letters, digits, '_' and '-'"
