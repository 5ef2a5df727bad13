"""WeChat Pay v3 key material, WeChat's side: whose key signs what, and the files a shop needs.

A bare §n in this module is a section of docs/protocol/wechat-pay-v3.md.

The simulator makes its own keys at start: the WeChat Pay public key pair with its
``PUB_KEY_ID_…`` (§3.3) and a platform certificate with its serial (§3.4). The key mode
(``public-key``, ``certificate``, ``both``) says which of them signs answers and notifies
(§3.5). The merchant's public key verifies the shop's requests (§2) and ``paySign`` (§5.2);
it comes from a PEM file or, without one, from a merchant key pair made here too, written
out for the shop.

Its own code, with ``cryptography``: never ``wechat.pay_v3``, so that a shop signing bug
fails end-to-end tests instead of agreeing with itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from wxsim.config import Config

PUBLIC_KEY = "public-key"
CERTIFICATE = "certificate"
BOTH = "both"
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
AEAD = "AEAD_AES_256_GCM"
MIN_KEY_BITS = 2048
CERTIFICATE_YEARS = 5  # what WeChat's current platform certificates get (§3.4)
# The files written for the shop (write_dir), and the index of them all.
PUBLIC_KEY_FILE = "wechatpay_pub_key.pem"
PUBLIC_KEY_ID_FILE = "wechatpay_pub_key_id.txt"
PLATFORM_CERT_FILE = "wechatpay_platform_cert.pem"
MERCHANT_KEY_FILE = "apiclient_key.pem"
MERCHANT_CERT_FILE = "apiclient_cert.pem"
MERCHANT_SERIAL_FILE = "apiclient_serial.txt"
APIV3_KEY_FILE = "apiv3_key.txt"
SHOP_ENV_FILE = "shop.env"
INDEX_FILE = "wxsim-v3.json"


@dataclass(frozen=True)
class Signer:
    """One of WeChat's signing keys and the id it goes by in ``Wechatpay-Serial`` (§3.1)."""

    serial: str
    key: rsa.RSAPrivateKey


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=MIN_KEY_BITS)


def random_serial() -> int:
    """A certificate serial that prints as 40 hex digits like WeChat's (and stays under the
    159 bits X.509 allows)."""
    return secrets.randbits(159) | (1 << 156)


def serial_hex(number: int) -> str:
    return format(number, "X")


def self_signed(key: rsa.RSAPrivateKey, serial: int, common_name: str) -> x509.Certificate:
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wxsim - not issued by Tenpay"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    start = datetime.now(UTC) - timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365 * CERTIFICATE_YEARS))
        .sign(key, hashes.SHA256())
    )


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """``base64(SHA256withRSA, PKCS#1 v1.5)`` (§2.2): how WeChat signs too (§3.2)."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    """Strict Base64, PKCS#1 v1.5 only (a PSS signature is refused as WeChat does, §2.6)."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def random_text(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def encrypt_resource(
    apiv3_key: str, plaintext: bytes, *, associated_data: str, original_type: str
) -> dict[str, str]:
    """AEAD_AES_256_GCM under the APIv3 key (§7.2): the nonce and the associated data are
    UTF-8 text, the ciphertext is Base64 of ciphertext ‖ 16-byte tag."""
    nonce = random_text(12)
    sealed = AESGCM(apiv3_key.encode("ascii")).encrypt(
        nonce.encode(), plaintext, associated_data.encode() or None
    )
    resource = {
        "original_type": original_type,
        "algorithm": AEAD,
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }
    if not original_type:  # a downloaded certificate's encrypt_certificate has none (§3.4)
        del resource["original_type"]
    return resource


def _pem_public(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,  # apiclient_key.pem is PKCS#8 (§1.1)
        serialization.NoEncryption(),
    )


def load_merchant_key(path: str) -> tuple[rsa.RSAPublicKey, str]:
    """The merchant's public key from a PEM file, and the serial when it is a certificate.

    Accepts what a merchant has: ``apiclient_key.pem`` (the public half is derived),
    ``apiclient_cert.pem`` (the serial comes with it) or a bare public key. Raises
    ValueError with a reason that never quotes the file.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the merchant key {path}: {exc.strerror}") from None
    serial = ""
    try:
        if b"CERTIFICATE-----" in data:
            certificate = x509.load_pem_x509_certificate(data)
            public_key = certificate.public_key()
            serial = serial_hex(certificate.serial_number)
        elif b"PRIVATE KEY-----" in data:
            public_key = serialization.load_pem_private_key(data, password=None).public_key()
        else:
            public_key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        # The loader's message may quote key material: never let it near a log.
        raise ValueError(
            f"{path} is not an unencrypted PEM private key, public key or certificate"
        ) from None
    if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < MIN_KEY_BITS:
        raise ValueError(f"the merchant key in {path} must be RSA of at least {MIN_KEY_BITS} bits")
    return public_key, serial


class V3Keys:
    """Everything v3 signs, verifies and encrypts with. Made once per simulator: a reset
    keeps it, as the shop holds the files written from it."""

    def __init__(self, config: Config) -> None:
        self.apiv3_key = config.apiv3_key
        # Shaped like the docs' PUB_KEY_ID_0114232134912410000000000000.
        self.public_key_id = PUBLIC_KEY_ID_PREFIX + "01" + "".join(
            secrets.choice(string.digits) for _ in range(26)
        )
        self.public_key_signer = Signer(self.public_key_id, new_rsa_key())
        platform_key = new_rsa_key()
        self.certificate = self_signed(
            platform_key, random_serial(), "wxsim WeChat Pay platform certificate"
        )
        self.platform_serial = serial_hex(self.certificate.serial_number)
        self.certificate_signer = Signer(self.platform_serial, platform_key)
        # Made only when no merchant key is given: written out so a demo can hand it over.
        self.merchant_private_key: rsa.RSAPrivateKey | None = None
        self.merchant_certificate: x509.Certificate | None = None
        if config.v3_merchant_key:
            self.merchant_public_key, cert_serial = load_merchant_key(config.v3_merchant_key)
            serial = config.v3_merchant_serial or cert_serial
            if not serial:
                raise ValueError(
                    "give the merchant certificate serial (v3_merchant_serial) with a "
                    "merchant key that is not a certificate"
                )
        else:
            self.merchant_private_key = new_rsa_key()
            number = int(config.v3_merchant_serial, 16) if config.v3_merchant_serial else (
                random_serial()
            )
            self.merchant_certificate = self_signed(
                self.merchant_private_key, number, "wxsim merchant API certificate"
            )
            self.merchant_public_key = self.merchant_private_key.public_key()
            serial = config.v3_merchant_serial or serial_hex(number)
        # Serials are hex: compared without regard to case (Wechatpay-Serial never is, §3.5).
        self.merchant_serial = serial.upper()

    # -- who signs (§3.5) ------------------------------------------------------------------------

    def answer_signer(self, mode: str, requested: str = "") -> Signer:
        """The key of an API answer. While switching over (``both``) WeChat signs with the
        key the request names in ``Wechatpay-Serial`` (§1.2); without one, with the
        certificate the merchant has been using."""
        if mode == PUBLIC_KEY:
            return self.public_key_signer
        if mode == CERTIFICATE:
            return self.certificate_signer
        if requested == self.public_key_id:
            return self.public_key_signer
        return self.certificate_signer

    def notify_signer(self, mode: str, sequence: int) -> Signer:
        """The key of a notify. While switching over, notifies move to the public key
        gradually and at random (§3.5): here they alternate, so one test sees both."""
        if mode == BOTH:
            return self.public_key_signer if sequence % 2 else self.certificate_signer
        return self.answer_signer(mode)

    def signed_headers(
        self, signer: Signer, body: bytes, now: float, defect: str = ""
    ) -> dict[str, str]:
        """``Wechatpay-*`` headers over ``timestamp\\nnonce\\nbody\\n`` (§3.1, §3.2).

        ``defect`` is an injected fault: ``bad_sign`` (a signature that does not verify),
        ``stale_timestamp`` (signed correctly 10 minutes ago, outside the window of §3.6),
        ``wrong_serial`` (a key id the shop cannot know), ``probe`` (§3.7).
        """
        timestamp = str(int(now) - (600 if defect == "stale_timestamp" else 0))
        nonce = secrets.token_hex(16)
        signature = rsa_sign(signer.key, f"{timestamp}\n{nonce}\n".encode() + body + b"\n")
        serial = signer.serial
        if defect == "bad_sign":
            raw = bytearray(base64.b64decode(signature))
            raw[-1] ^= 0x01  # still Base64, no longer WeChat's signature
            signature = base64.b64encode(bytes(raw)).decode()
        elif defect == "wrong_serial":
            serial = (
                PUBLIC_KEY_ID_PREFIX + "01" + "9" * 26
                if serial.startswith(PUBLIC_KEY_ID_PREFIX)
                else serial_hex(random_serial())
            )
        elif defect == "probe":
            # Not Base64 after the prefix: a verifier must refuse it without crashing (§3.7).
            signature = "WECHATPAY/SIGNTEST/" + random_text(40)
        return {
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": signature,
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Serial": serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }

    # -- PEM -------------------------------------------------------------------------------------

    def public_key_pem(self) -> str:
        return _pem_public(self.public_key_signer.key.public_key()).decode("ascii")

    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def effective_time(self) -> datetime:
        return self.certificate.not_valid_before_utc

    def expire_time(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def as_json(self, mode: str) -> dict[str, Any]:
        """Public facts only (``GET /sim/v3/keys``): no private key, no APIv3 key."""
        return {
            "mode": mode,
            "public_key_id": self.public_key_id,
            "public_key_pem": self.public_key_pem(),
            "platform_serial": self.platform_serial,
            "platform_certificate_pem": self.certificate_pem(),
            "merchant_serial": self.merchant_serial,
            "merchant_key_generated": self.merchant_private_key is not None,
        }

    # -- the files a shop needs ------------------------------------------------------------------

    def write_dir(
        self, folder: str | Path, *, config: Config, mode: str, base_url: str
    ) -> dict[str, Any]:
        """Write what a shop is configured with (wxsim/README.md, "WeChat Pay v3") and
        return the index, also written as ``wxsim-v3.json``. Secrets are 0600."""
        root = Path(folder).resolve()
        root.mkdir(parents=True, exist_ok=True)

        def write(name: str, data: bytes | str, secret: bool = False) -> str:
            target = root / name
            raw = data.encode("utf-8") if isinstance(data, str) else data
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
            with os.fdopen(fd, "wb") as out:
                out.write(raw)
            return str(target)

        index: dict[str, Any] = {
            "base_url": base_url,
            "mode": mode,
            "appid": config.appid,
            "mchid": config.mch_id,
            "apiv3_key": config.apiv3_key,
            "apiv3_key_path": write(APIV3_KEY_FILE, config.apiv3_key + "\n", secret=True),
            "public_key_id": self.public_key_id,
            "public_key_path": write(PUBLIC_KEY_FILE, self.public_key_pem()),
            "platform_serial": self.platform_serial,
            "platform_certificate_path": write(PLATFORM_CERT_FILE, self.certificate_pem()),
            "merchant_serial": self.merchant_serial,
            "merchant_private_key_path": None,
            "merchant_certificate_path": None,
        }
        write(PUBLIC_KEY_ID_FILE, self.public_key_id + "\n")
        write(MERCHANT_SERIAL_FILE, self.merchant_serial + "\n")
        if self.merchant_private_key is not None and self.merchant_certificate is not None:
            index["merchant_private_key_path"] = write(
                MERCHANT_KEY_FILE, _pem_private(self.merchant_private_key), secret=True
            )
            index["merchant_certificate_path"] = write(
                MERCHANT_CERT_FILE,
                self.merchant_certificate.public_bytes(serialization.Encoding.PEM),
            )
        write(SHOP_ENV_FILE, shop_env(index), secret=True)
        write(INDEX_FILE, json.dumps(index, indent=2) + "\n", secret=True)
        return index


def shop_env(index: dict[str, Any]) -> str:
    """The shop's settings for this simulator, one ``NAME=value`` a line (shopsite/settings.py
    names). Platform-certificate merchants get no public key: they download certificates."""
    lines = [
        "WECHAT_PAY_VERSION=v3",
        f"WECHAT_APPID={index['appid']}",
        f"WECHAT_MCH_ID={index['mchid']}",
        f"WECHAT_PAY_API_BASE={index['base_url']}",
        f"WECHAT_API_V3_KEY={index['apiv3_key']}",
        f"WECHAT_MCH_CERT_SERIAL={index['merchant_serial']}",
    ]
    if index["merchant_private_key_path"]:
        lines.append(f"WECHAT_MCH_PRIVATE_KEY_PATH={index['merchant_private_key_path']}")
    else:
        lines.append("# WECHAT_MCH_PRIVATE_KEY_PATH= the merchant key given to the simulator")
    if index["mode"] != CERTIFICATE:
        lines.append(f"WECHAT_PAY_PUBLIC_KEY_PATH={index['public_key_path']}")
        lines.append(f"WECHAT_PAY_PUBLIC_KEY_ID={index['public_key_id']}")
    return "\n".join(lines) + "\n"
