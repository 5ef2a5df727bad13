# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.
"""The rules of verifying.py a mutation run found unpinned: a certificate's validity bounds,
inclusive to the second, both WeChat's listed times and the certificate's own (§3.4), and
how serials are normalised (§3.5)."""

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.wx_v3 import (
    OFFICIAL_WECHATPAY_PUBLIC_KEY_PEM,
    new_rsa_key,
    pem_of,
    self_signed_certificate,
    signed_headers,
    utc,
)
from wechat.pay_v3 import (
    KeyRing,
    PlatformCertificate,
    SignatureHeaderError,
    SignatureProbe,
    TimestampOutOfWindow,
    UnknownSerial,
    WxPayV3SignatureError,
    verify_signature,
)

BODY = b'{"code":"SUCCESS"}'
SECOND = timedelta(seconds=1)
TICK = timedelta(microseconds=1)
NOT_BEFORE = utc(2024, 12, 1)
NOT_AFTER = utc(2026, 12, 1)


@pytest.fixture(scope="module")
def signer():
    key = new_rsa_key()
    return key, self_signed_certificate(key, 0xABCDEF, NOT_BEFORE, NOT_AFTER)


def _listed(certificate, effective, expire, serial_no="ABCDEF") -> PlatformCertificate:
    """A certificate as ``download_certificates()`` lists it: WeChat's own times beside it."""
    return PlatformCertificate(serial_no, effective, expire, certificate)


def _verifies_at(key, ring, moment, serial="ABCDEF") -> bool:
    now = moment.timestamp()
    headers = signed_headers(key, serial, BODY, timestamp=int(now))
    try:
        return verify_signature(headers, BODY, ring, now=now) == serial
    except UnknownSerial:
        return False


# -- validity bounds (§3.4) --------------------------------------------------------------------


def test_a_certificate_is_valid_from_its_first_to_its_last_second_inclusive(signer):
    key, certificate = signer
    ring = KeyRing(certificates=[certificate])
    assert _verifies_at(key, ring, NOT_BEFORE)
    assert _verifies_at(key, ring, NOT_AFTER)
    assert not _verifies_at(key, ring, NOT_BEFORE - SECOND)
    assert not _verifies_at(key, ring, NOT_AFTER + SECOND)


@pytest.mark.parametrize(
    "moment, valid",
    [
        (NOT_BEFORE - TICK, False),
        (NOT_BEFORE, True),
        (NOT_AFTER, True),
        (NOT_AFTER + TICK, False),
    ],
)
def test_valid_at_edges_to_the_microsecond(signer, moment, valid):
    cert = PlatformCertificate.from_x509(signer[1])
    assert cert.valid_at(moment) is valid


@pytest.mark.parametrize(
    "moment, valid",
    [
        (utc(2025, 1, 1) - TICK, False),
        (utc(2025, 1, 1), True),
        (utc(2026, 1, 1), True),
        (utc(2026, 1, 1) + TICK, False),
    ],
)
def test_wechats_listed_times_narrower_than_the_certificate_bound_it(signer, moment, valid):
    # WeChat lists when it uses a certificate; outside that, even a certificate that is
    # itself still valid verifies nothing.
    cert = _listed(signer[1], utc(2025, 1, 1), utc(2026, 1, 1))
    assert cert.valid_at(moment) is valid


@pytest.mark.parametrize(
    "moment, valid",
    [
        (NOT_BEFORE - TICK, False),
        (NOT_BEFORE, True),
        (NOT_AFTER, True),
        (NOT_AFTER + TICK, False),
    ],
)
def test_the_certificates_own_times_bound_wider_listed_times(signer, moment, valid):
    # Whatever the list says, a certificate outside its own validity verifies nothing.
    cert = _listed(signer[1], utc(2020, 1, 1), utc(2030, 1, 1))
    assert cert.valid_at(moment) is valid


def test_key_for_skips_a_certificate_not_valid_at_that_moment(signer):
    key, certificate = signer
    ring = KeyRing(certificates=[_listed(certificate, utc(2025, 1, 1), utc(2026, 1, 1))])
    assert ring.key_for("ABCDEF", at=utc(2025, 6, 1)).public_numbers() == (
        key.public_key().public_numbers()
    )
    with pytest.raises(UnknownSerial):
        ring.key_for("ABCDEF", at=utc(2026, 6, 1))


def test_a_renewed_certificate_under_the_same_serial_is_found_after_the_expired_one(signer):
    # key_for looks past a certificate of the right serial that is not valid at the moment.
    key, certificate = signer
    old_key = new_rsa_key()
    old = self_signed_certificate(old_key, 0xABCDEF, utc(2020, 1, 1), utc(2024, 1, 1))
    ring = KeyRing(certificates=[old, certificate])
    assert _verifies_at(key, ring, utc(2025, 6, 1))
    assert not _verifies_at(old_key, KeyRing(certificates=[old]), utc(2025, 6, 1))


# -- serial normalisation (§3.5) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "serial, key",
    [
        ("ABCDEF", "ABCDEF"),
        ("abcdef", "ABCDEF"),
        ("000aBcDeF", "ABCDEF"),
        ("A0B0", "A0B0"),  # zeros inside or at the end are digits
        ("A000", "A000"),
        ("0", "0"),
        ("0000", "0"),
        ("PUB_KEY_ID_0001", "PUB_KEY_ID_0001"),  # not hex: never parsed as a number
        ("0PUB_KEY_ID", "0PUB_KEY_ID"),
        ("00g1", "00g1"),
        ("ab cd", "ab cd"),
    ],
)
def test_serial_key(serial, key):
    from wechat.pay_v3.verifying import _serial_key

    assert _serial_key(serial) == key


@pytest.mark.parametrize("serial", ["ABCDEF0", "ABCDEF00", "0ABCDE", "BCDEF", "ABCDE", "0", "000"])
def test_serials_that_only_look_alike_do_not_match(signer, serial):
    key, certificate = signer
    ring = KeyRing(certificates=[certificate])
    with pytest.raises(UnknownSerial):
        ring.key_for(serial, at=utc(2025, 6, 1))
    assert not _verifies_at(key, ring, utc(2025, 6, 1), serial=serial)


def test_an_all_zero_serial_matches_only_zero(signer):
    # "0", "00"… all name serial zero; a non-hex serial never does.
    ring = KeyRing(certificates=[_listed(signer[1], NOT_BEFORE, NOT_AFTER, serial_no="0")])
    for serial in ("0", "000"):
        assert ring.key_for(serial, at=utc(2025, 6, 1)) is not None
    for serial in ("", "O", "XX0XX", "PUB_KEY_ID_0"):
        with pytest.raises(UnknownSerial):
            ring.key_for(serial, at=utc(2025, 6, 1))


def test_a_hex_public_key_id_lookalike_is_not_normalised(wechat_key):
    # The public key is chosen by its id exactly; a hex-looking serial is a certificate's.
    ring = KeyRing(public_key=wechat_key.public_key(), public_key_id="PUB_KEY_ID_00AB")
    assert ring.key_for("PUB_KEY_ID_00AB", at=utc(2025, 6, 1)) is not None
    for serial in ("PUB_KEY_ID_AB", "pub_key_id_00ab", "00AB", "AB"):
        with pytest.raises(UnknownSerial):
            ring.key_for(serial, at=utc(2025, 6, 1))


# -- PEM in and out (§3.4) ---------------------------------------------------------------------


def test_a_certificate_pem_is_read_from_bytes_or_text(signer):
    pem = pem_of(signer[1])
    for given in (pem, pem.encode("ascii")):
        cert = PlatformCertificate.from_pem(given)
        assert (cert.serial_no, cert.pem()) == ("ABCDEF", pem)


@pytest.mark.parametrize("garbage", ["garbage", b"garbage", "-----BEGIN CERTIFICATE-----\né"])
def test_what_is_not_a_certificate_pem_is_refused_without_echoing_it(garbage):
    with pytest.raises(ValueError) as caught:
        PlatformCertificate.from_pem(garbage)
    assert str(caught.value) == "not a PEM X.509 certificate"


# -- the reasons given (logged, and kept on a notify's ledger row) -----------------------------


@pytest.mark.parametrize(
    "offset, reason",
    [
        (300, "Wechatpay-Timestamp is 300 s old"),
        (-301, "Wechatpay-Timestamp is 301 s in the future"),
    ],
)
def test_a_timestamp_out_of_the_window_says_by_how_much_and_which_way(signer, offset, reason):
    key, certificate = signer
    now = int(utc(2025, 6, 1).timestamp())
    headers = signed_headers(key, "ABCDEF", BODY, timestamp=now)
    with pytest.raises(TimestampOutOfWindow) as caught:
        verify_signature(headers, BODY, KeyRing(certificates=[certificate]), now=now + offset)
    assert str(caught.value) == reason


def test_a_probe_is_refused_as_a_probe(signer):
    headers = signed_headers(signer[0], "ABCDEF", BODY, timestamp=1)
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/x"
    with pytest.raises(SignatureProbe) as caught:
        verify_signature(headers, BODY, KeyRing(certificates=[signer[1]]), now=1)
    assert str(caught.value) == "signature probe (WECHATPAY/SIGNTEST/) refused"


def test_text_instead_of_the_raw_body_says_why(signer):
    with pytest.raises(TypeError) as caught:
        verify_signature({}, BODY.decode(), KeyRing(certificates=[signer[1]]))
    assert str(caught.value) == "verify the raw body bytes, never re-encoded JSON (§3.2)"


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({}, "a KeyRing needs the WeChat Pay public key or a certificate"),
        (
            {"public_key_id": "PUB_KEY_ID_1"},
            "give the WeChat Pay public key together with its PUB_KEY_ID",
        ),
        ({"key": "wechat"}, "give the WeChat Pay public key together with its PUB_KEY_ID"),
        (
            {"key": "wechat", "public_key_id": "ABCDEF"},
            "the public-key id must look like PUB_KEY_ID_…",
        ),
        (
            {"key": "private", "public_key_id": "PUB_KEY_ID_1"},
            "the WeChat Pay public key must be an RSA public key",
        ),
    ],
)
def test_an_incomplete_keyring_says_what_is_missing(wechat_key, kwargs, reason):
    given = kwargs.pop("key", None)
    if given == "wechat":
        kwargs["public_key"] = wechat_key.public_key()
    elif given == "private":
        kwargs["public_key"] = wechat_key  # the private half is no public key
    with pytest.raises(ValueError) as caught:
        KeyRing(**kwargs)
    assert str(caught.value) == reason


def test_a_platform_certificate_without_an_rsa_key_is_refused_by_its_serial():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    certificate = self_signed_certificate(ec_key, 0xEC01, NOT_BEFORE, NOT_AFTER)
    with pytest.raises(ValueError) as caught:
        KeyRing(certificates=[certificate])
    assert str(caught.value) == "platform certificate EC01 has no RSA key"


def test_a_public_key_pem_that_is_none_says_so():
    with pytest.raises(ValueError) as caught:
        KeyRing.from_pem(public_key_pem=b"garbage", public_key_id="PUB_KEY_ID_1")
    assert str(caught.value) == "not a PEM public key"
    ring = KeyRing.from_pem(
        public_key_pem=OFFICIAL_WECHATPAY_PUBLIC_KEY_PEM.encode("ascii"),
        public_key_id="PUB_KEY_ID_1",
    )
    assert ring.serials == {"PUB_KEY_ID_1"}


def test_a_ring_from_certificate_pems_alone_needs_no_public_key(signer):
    key, certificate = signer
    ring = KeyRing.from_pem(certificate_pems=[pem_of(certificate)])
    assert ring.serials == {"ABCDEF"}
    assert _verifies_at(key, ring, utc(2025, 6, 1))


# -- headers as they come (§3.1) ---------------------------------------------------------------


def test_a_header_name_that_is_not_text_is_skipped_not_the_end(signer):
    key, certificate = signer
    headers = {1: "x", **signed_headers(key, "ABCDEF", BODY, timestamp=1_750_000_000)}
    ring = KeyRing(certificates=[certificate])
    assert verify_signature(headers, BODY, ring, now=1_750_000_000) == "ABCDEF"


def test_header_names_and_values_are_read_without_surrounding_space(signer):
    key, certificate = signer
    headers = signed_headers(key, "ABCDEF", BODY, timestamp=1_750_000_000)
    spaced = {f" {name}\t": f"  {value} " for name, value in headers.items()}
    ring = KeyRing(certificates=[certificate])
    assert verify_signature(spaced, BODY, ring, now=1_750_000_000) == "ABCDEF"


@pytest.mark.parametrize("extra, refused", [(0, False), (1, True)])
def test_the_longest_signature_header_accepted(signer, extra, refused):
    # 2048 Base64 characters are read and checked (and fail as a signature); one more is
    # malformed before any decoding.
    key, certificate = signer
    headers = signed_headers(key, "ABCDEF", BODY, timestamp=1_750_000_000)
    headers["Wechatpay-Signature"] = "A" * (2048 + extra)
    with pytest.raises(WxPayV3SignatureError) as caught:
        verify_signature(headers, BODY, KeyRing(certificates=[certificate]), now=1_750_000_000)
    assert isinstance(caught.value, SignatureHeaderError) is refused


# -- each header refusal says which header and why (§3.1) ---------------------------------------

NOW = 1_750_000_000


def _refusal(signer, **changes) -> str:
    key, certificate = signer
    headers = signed_headers(key, "ABCDEF", BODY, timestamp=NOW)
    for name, value in changes.items():
        headers[name.replace("_", "-")] = value
    with pytest.raises(WxPayV3SignatureError) as caught:
        verify_signature(headers, BODY, KeyRing(certificates=[certificate]), now=NOW)
    return str(caught.value)


def test_a_header_value_that_is_not_text(signer):
    assert _refusal(signer, Wechatpay_Nonce=b"abc") == "Wechatpay-Nonce is not text"


def test_a_malformed_nonce_timestamp_or_serial_is_named(signer):
    assert _refusal(signer, Wechatpay_Nonce="a b") == "wechatpay-nonce header malformed"
    assert _refusal(signer, Wechatpay_Timestamp="12x") == "wechatpay-timestamp header malformed"


def test_a_signature_type_other_than_wechatpays_says_what_it_was(signer):
    declared = "HMAC-SHA256-" + "X" * 40
    assert _refusal(signer, Wechatpay_Signature_Type=declared) == (
        f"wechatpay-signature-type {declared[:40]!r} is not WECHATPAY2-SHA256-RSA2048"
    )


def test_a_signature_too_long_or_not_base64_is_named(signer):
    assert _refusal(signer, Wechatpay_Signature="A" * 2049) == (
        "wechatpay-signature header malformed"
    )
    # Characters outside Base64 are refused, not skipped (which would decode something).
    assert _refusal(signer, Wechatpay_Signature="AAAA$AAAA") == (
        "wechatpay-signature header is not Base64"
    )


def test_a_signature_that_does_not_verify_names_the_serial(signer):
    assert _refusal(signer, Wechatpay_Signature="AAAA") == (
        "signature does not verify with the key of serial 'ABCDEF'"
    )


def test_a_long_serial_is_quoted_cut_to_64_characters(wechat_key):
    # A PUB_KEY_ID may run to 128 characters (§3.3) and still name a key.
    long_id = "PUB_KEY_ID_" + "0" * 100 + "1"
    ring = KeyRing(public_key=wechat_key.public_key(), public_key_id=long_id)
    headers = signed_headers(wechat_key, long_id, BODY, timestamp=NOW)
    headers["Wechatpay-Signature"] = "AAAA"
    with pytest.raises(WxPayV3SignatureError) as caught:
        verify_signature(headers, BODY, ring, now=NOW)
    assert str(caught.value) == (
        f"signature does not verify with the key of serial {long_id[:64]!r}"
    )
