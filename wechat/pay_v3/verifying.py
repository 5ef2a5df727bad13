"""WeChat's side of the v3 signatures: every answer and every notify is checked here (§3).

The message is ``timestamp\\nnonce\\nbody\\n`` over the **raw bytes received** (§3.2), the key
is chosen by ``Wechatpay-Serial`` from a :class:`KeyRing` (§3.5), and the timestamp must be
less than 5 minutes from our clock (§3.6). Each refusal is its own subclass of
:class:`~wechat.pay_v3.errors.WxPayV3SignatureError`; nothing else escapes, whatever the
headers hold.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import (
    SignatureHeaderError,
    SignatureProbe,
    TimestampOutOfWindow,
    UnknownSerial,
    WxPayV3SignatureError,
)
from .signing import AUTH_SCHEME

# Codec names as constants: mutmut mutates literals in functions, and "ASCII" or
# "UTF-8" name the same codecs (equivalent mutants), while module constants stay as they are.
_ASCII = "ascii"

WINDOW_SECONDS = 300  # reject when |now - Wechatpay-Timestamp| >= 5 minutes (§3.6)
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"  # §3.7
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"  # §3.3

TIMESTAMP = "wechatpay-timestamp"
NONCE = "wechatpay-nonce"
SIGNATURE = "wechatpay-signature"
SERIAL = "wechatpay-serial"
SIGNATURE_TYPE = "wechatpay-signature-type"

# Header values we accept: bounded, printable ASCII. Unix seconds fit in 10 digits until
# 2286; the bound also keeps int() away from huge digit strings.
_TIMESTAMP_SHAPE = re.compile(r"[0-9]{1,12}")
_TOKEN_SHAPE = re.compile(r"[\x21-\x7e]{1,128}")
_SIGNATURE_MAX = 2048
_HEX = re.compile(r"[0-9A-Fa-f]+")


def _serial_key(serial: str) -> str:
    """How certificate serials are compared: hex, whatever the case and leading zeros.

    Only hex serials are normalised; a ``PUB_KEY_ID_…`` is never parsed as a number (§3.5).
    """
    if not _HEX.fullmatch(serial):
        return serial
    return format(int(serial, 16), "X")


@dataclass(frozen=True)
class PlatformCertificate:
    """One WeChat Pay platform certificate (§3.4), as ``download_certificates()`` returns it."""

    serial_no: str  # uppercase hex, as WeChat writes it
    effective_time: datetime  # aware
    expire_time: datetime  # aware
    certificate: x509.Certificate = field(repr=False, compare=False)

    @classmethod
    def from_x509(cls, certificate: x509.Certificate) -> PlatformCertificate:
        return cls(
            serial_no=format(certificate.serial_number, "X"),
            effective_time=certificate.not_valid_before_utc,
            expire_time=certificate.not_valid_after_utc,
            certificate=certificate,
        )

    @classmethod
    def from_pem(cls, pem: bytes | str) -> PlatformCertificate:
        try:
            data = pem.encode(_ASCII) if isinstance(pem, str) else pem
            return cls.from_x509(x509.load_pem_x509_certificate(data))
        except ValueError:
            raise ValueError("not a PEM X.509 certificate") from None

    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode(_ASCII)

    def valid_at(self, moment: datetime) -> bool:
        return (
            self.effective_time <= moment <= self.expire_time
            and self.certificate.not_valid_before_utc <= moment
            and moment <= self.certificate.not_valid_after_utc
        )


@dataclass(frozen=True, init=False)
class KeyRing:
    """WeChat Pay's verification keys by ``Wechatpay-Serial`` (§3.5): the WeChat Pay public
    key with its ``PUB_KEY_ID_…`` (§3.3), platform certificates (§3.4), or both at once
    while a merchant switches over.

    Immutable: after ``download_certificates()`` build a new ring with
    :meth:`with_certificates` and swap the reference, so a verification in progress never
    sees half of a refresh.
    """

    public_key_id: str | None
    public_key: rsa.RSAPublicKey | None = field(repr=False, compare=False)
    certificates: tuple[PlatformCertificate, ...]

    def __init__(
        self,
        *,
        public_key: rsa.RSAPublicKey | None = None,
        public_key_id: str | None = None,
        certificates: Iterable[PlatformCertificate | x509.Certificate] = (),
    ) -> None:
        if (public_key is None) != (public_key_id is None):
            raise ValueError("give the WeChat Pay public key together with its PUB_KEY_ID")
        if public_key_id is not None and not (
            public_key_id.startswith(PUBLIC_KEY_ID_PREFIX) and _TOKEN_SHAPE.fullmatch(public_key_id)
        ):
            raise ValueError(f"the public-key id must look like {PUBLIC_KEY_ID_PREFIX}…")
        if public_key is not None and not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("the WeChat Pay public key must be an RSA public key")
        certs = tuple(
            c if isinstance(c, PlatformCertificate) else PlatformCertificate.from_x509(c)
            for c in certificates
        )
        for cert in certs:
            if not isinstance(cert.certificate.public_key(), rsa.RSAPublicKey):
                raise ValueError(f"platform certificate {cert.serial_no} has no RSA key")
        if public_key is None and not certs:
            raise ValueError("a KeyRing needs the WeChat Pay public key or a certificate")
        object.__setattr__(self, "public_key_id", public_key_id)
        object.__setattr__(self, "public_key", public_key)
        object.__setattr__(self, "certificates", certs)

    @classmethod
    def from_pem(
        cls,
        *,
        public_key_pem: bytes | str | None = None,
        public_key_id: str | None = None,
        certificate_pems: Iterable[bytes | str] = (),
    ) -> KeyRing:
        """Build a ring from ``pub_key.pem`` + its id and/or platform certificate PEMs."""
        public_key = None
        if public_key_pem is not None:
            try:
                data = (
                    public_key_pem.encode(_ASCII)
                    if isinstance(public_key_pem, str)
                    else public_key_pem
                )
                public_key = serialization.load_pem_public_key(data)
            except ValueError:
                raise ValueError("not a PEM public key") from None
        return cls(
            public_key=public_key,  # checked by __init__
            public_key_id=public_key_id,
            certificates=[PlatformCertificate.from_pem(pem) for pem in certificate_pems],
        )

    def with_certificates(self, certificates: Iterable[PlatformCertificate]) -> KeyRing:
        """The same public key, with ``certificates`` replacing the ones held."""
        return KeyRing(
            public_key=self.public_key,
            public_key_id=self.public_key_id,
            certificates=certificates,
        )

    @property
    def serials(self) -> frozenset[str]:
        ids = {c.serial_no for c in self.certificates}
        return frozenset(ids | ({self.public_key_id} if self.public_key_id else set()))

    def key_for(self, serial: str, *, at: datetime) -> rsa.RSAPublicKey:
        """The key WeChat signed with, chosen by ``Wechatpay-Serial``; a certificate counts
        only while valid ``at`` that moment. Raises :class:`UnknownSerial`."""
        if self.public_key is not None and serial == self.public_key_id:
            return self.public_key
        wanted = _serial_key(serial)
        for cert in self.certificates:
            if _serial_key(cert.serial_no) == wanted and cert.valid_at(at):
                key = cert.certificate.public_key()
                assert isinstance(key, rsa.RSAPublicKey)  # checked by __init__
                return key
        raise UnknownSerial(serial)


def _headers(headers: Mapping[str, object]) -> dict[str, str]:
    """Header names are case-insensitive (§3.1): lower-case them, refusing a name given
    twice with different values (a plain dict can hold both spellings)."""
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str):
            continue
        key = name.strip().lower()
        if key not in (TIMESTAMP, NONCE, SIGNATURE, SERIAL, SIGNATURE_TYPE):
            continue
        if not isinstance(value, str):
            raise SignatureHeaderError(f"{name} is not text")
        if lowered.get(key, value) != value:
            raise SignatureHeaderError(f"{name} given twice")
        lowered[key] = value.strip()
    return lowered


def _required(headers: Mapping[str, str], name: str, shape: re.Pattern[str]) -> str:
    value = headers.get(name)
    if not value:
        raise SignatureHeaderError(f"{name} header missing")
    if not shape.fullmatch(value):
        raise SignatureHeaderError(f"{name} header malformed")
    return value


def verify_signature(
    headers: Mapping[str, object],
    body: bytes,
    keyring: KeyRing,
    *,
    now: float | None = None,
) -> str:
    """Check that WeChat signed ``body`` (the raw bytes received), §3. Return the serial.

    ``headers`` may be any mapping (``requests``' answer headers, Django's
    ``request.headers``, a dict in any case). ``now`` is Unix seconds (default: the clock).
    Raises a :class:`WxPayV3SignatureError` subclass, and nothing else, on refusal.
    """
    if not isinstance(body, bytes):
        raise TypeError("verify the raw body bytes, never re-encoded JSON (§3.2)")
    lowered = _headers(headers)
    signature = lowered.get(SIGNATURE, "")
    if not signature:
        raise SignatureHeaderError(f"{SIGNATURE} header missing")
    # Before anything else looks at it: a probe's value is not Base64 (§3.7).
    if signature.startswith(PROBE_PREFIX):
        raise SignatureProbe("signature probe (WECHATPAY/SIGNTEST/) refused")
    timestamp = _required(lowered, TIMESTAMP, _TIMESTAMP_SHAPE)
    nonce = _required(lowered, NONCE, _TOKEN_SHAPE)
    serial = _required(lowered, SERIAL, _TOKEN_SHAPE)
    declared = lowered.get(SIGNATURE_TYPE)
    if declared and declared != AUTH_SCHEME:
        raise SignatureHeaderError(f"{SIGNATURE_TYPE} {declared[:40]!r} is not {AUTH_SCHEME}")
    if len(signature) > _SIGNATURE_MAX:
        raise SignatureHeaderError(f"{SIGNATURE} header malformed")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureHeaderError(f"{SIGNATURE} header is not Base64") from None

    current = time.time() if now is None else now
    skew = current - int(timestamp)
    if abs(skew) >= WINDOW_SECONDS:
        direction = "old" if skew > 0 else "in the future"
        raise TimestampOutOfWindow(f"Wechatpay-Timestamp is {abs(skew):.0f} s {direction}")

    key = keyring.key_for(serial, at=datetime.fromtimestamp(current, UTC))
    message = timestamp.encode(_ASCII) + b"\n" + nonce.encode(_ASCII) + b"\n" + body + b"\n"
    try:
        key.verify(raw_signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise WxPayV3SignatureError(
            f"signature does not verify with the key of serial {serial[:64]!r}"
        ) from None
    return serial
