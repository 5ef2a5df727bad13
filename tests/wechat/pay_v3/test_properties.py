"""Property tests: signatures, verification and AES-GCM hold for any input, not just the
vectors, and hostile input only ever raises the package's own refusals."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.wx_v3 import (
    APIV3_KEY,
    NOW,
    PUBLIC_KEY_ID,
    encrypt_resource,
    signed_headers,
    wx_verify,
)
from wechat.pay_v3 import (
    DecryptError,
    WxPayV3SignatureError,
    decrypt_resource,
    request_message,
    rsa_sign,
    verify_signature,
)

relaxed = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
bodies = st.binary(max_size=400)
nonces = st.text(string.ascii_letters + string.digits, min_size=1, max_size=32)
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])
paths = st.text(string.ascii_letters + string.digits + "/-_*?=&%", min_size=1, max_size=60).map(
    lambda p: "/" + p
)
header_text = st.text(max_size=60)
gcm_nonces = st.text(string.ascii_letters + string.digits, min_size=12, max_size=12)


@relaxed
@given(methods, paths, st.integers(0, 2**32), nonces, bodies)
def test_request_signature_verifies_independently(merchant_key, method, path, ts, nonce, body):
    signature = rsa_sign(merchant_key, request_message(method, path, ts, nonce, body))
    message = f"{method}\n{path}\n{ts}\n{nonce}\n".encode() + body + b"\n"
    assert wx_verify(merchant_key.public_key(), message, signature)


@relaxed
@given(bodies, nonces, st.integers(-299, 299))
def test_what_wechat_signed_verifies(keyring, wechat_key, body, nonce, skew):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW, nonce=nonce)
    assert verify_signature(headers, body, keyring, now=NOW + skew) == PUBLIC_KEY_ID


@relaxed
@given(bodies, st.data())
def test_any_change_to_the_body_fails(keyring, wechat_key, body, data):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    changed = data.draw(bodies.filter(lambda other: other != body))
    try:
        verify_signature(headers, changed, keyring, now=NOW)
    except WxPayV3SignatureError:
        return
    raise AssertionError("a changed body verified")


@relaxed
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "Wechatpay-Timestamp",
                "Wechatpay-Nonce",
                "Wechatpay-Signature",
                "Wechatpay-Serial",
                "Wechatpay-Signature-Type",
                "wechatpay-serial",
                "X-Other",
            ]
        ),
        st.one_of(header_text, st.integers().map(str), st.just("WECHATPAY/SIGNTEST/x")),
    ),
    bodies,
)
def test_hostile_headers_only_raise_signature_errors(keyring, headers, body):
    try:
        verify_signature(headers, body, keyring, now=NOW)
    except WxPayV3SignatureError:
        return
    raise AssertionError("unsigned input verified")


@relaxed
@given(st.binary(max_size=2000), st.text(max_size=30), gcm_nonces)
def test_encrypt_then_decrypt_round_trips(plaintext, aad, nonce):
    resource = encrypt_resource(APIV3_KEY, plaintext, associated_data=aad, nonce=nonce)
    assert decrypt_resource(resource, APIV3_KEY) == plaintext


@relaxed
@given(st.binary(min_size=1, max_size=500), st.text(max_size=30), gcm_nonces, st.data())
def test_any_tampering_fails_authentication(plaintext, aad, nonce, data):
    resource = encrypt_resource(APIV3_KEY, plaintext, associated_data=aad, nonce=nonce)
    field = data.draw(st.sampled_from(["ciphertext", "associated_data", "nonce"]))
    original = resource[field]
    tampered = data.draw(
        (gcm_nonces if field == "nonce" else st.text(max_size=40)).filter(lambda v: v != original)
    )
    try:
        decrypt_resource({**resource, field: tampered}, APIV3_KEY)
    except DecryptError:
        return
    # Base64 ignores nothing here (validate=True), so only the same bytes could pass.
    raise AssertionError(f"tampered {field} decrypted")


@relaxed
@given(
    st.dictionaries(
        st.sampled_from(["algorithm", "ciphertext", "associated_data", "nonce", "x"]),
        st.one_of(st.text(max_size=60), st.integers(), st.none(), st.lists(st.integers())),
    )
)
def test_hostile_resources_only_raise_decrypt_errors(resource):
    try:
        decrypt_resource(resource, APIV3_KEY)
    except DecryptError:
        return
    raise AssertionError("a random resource decrypted")
