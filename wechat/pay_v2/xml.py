"""The v2 XML envelope (§1): one flat ``<xml>`` with one child per field.

Inbound XML (answers and, above all, notifies from the internet) is parsed with
``defusedxml`` and DTDs, entity declarations and external references all forbidden: WeChat
Pay warned every merchant about XXE in 2018 (§1). Anything that is not the flat envelope is
refused, so callers only ever see ``dict[str, str]`` or an :class:`XMLError`. Outbound, a
field the envelope cannot carry raises :class:`WxPayRequestInvalid`, a ``WxPayError`` like
every other failure of a call, so no caller sees a bare ``ValueError`` escape.

Attributes are refused everywhere, including on ``<xml>`` itself: the protocol never uses
them (§1 "no attributes"), so their presence means the body is not a WeChat message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from .errors import WxPayRequestInvalid, XMLError

# Far above any real answer or notify (a few KiB), small enough to refuse floods cheaply.
MAX_BODY_BYTES = 64 * 1024

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Characters XML 1.0 cannot carry at all, not even in CDATA; writing them would make the
# document malformed (WeChat would answer XML_FORMAT_ERROR).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_CDATA_END = "]]>"


def _cdata(text: str) -> str:
    # "]]>" would end the section early: close it between "]]" and ">" and reopen.
    return "<![CDATA[" + text.replace(_CDATA_END, "]]]]><![CDATA[>") + "]]>"


def _element(name: str, value: object) -> str:
    if not _NAME.fullmatch(name):
        raise WxPayRequestInvalid(f"invalid XML field name {name!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"<{name}>{value}</{name}>"
    text = str(value)
    if _XML_ILLEGAL.search(text):
        raise WxPayRequestInvalid(f"field {name!r} contains characters XML cannot carry")
    if "\r" in text:
        # Every XML parser turns a literal CR into LF, even inside CDATA, so the receiver
        # would verify the signature over another value. Only a character reference
        # survives: escape the text instead of wrapping it in CDATA.
        return f"<{name}>{escape(text).replace(chr(13), '&#13;')}</{name}>"
    return f"<{name}>{_cdata(text)}</{name}>"


def to_xml(params: Mapping[str, object]) -> bytes:
    """Serialise ``params`` as a UTF-8 ``<xml>`` body; str values in CDATA, ints bare.

    ``None`` values are skipped (they are not sent, hence not signed either, §2.1).
    """
    children = "".join(_element(k, v) for k, v in params.items() if v is not None)
    return f"<xml>{children}</xml>".encode()


def _decode(body: bytes | str, max_bytes: int) -> str:
    """Size and encoding checks, done before the parser sees a single byte."""
    if isinstance(body, str):
        try:
            # Mutation testing: "UTF-8" names the same codec (equivalent mutants, here and
            # in the decode below).
            raw = body.encode("utf-8")  # pragma: no mutate
        except UnicodeEncodeError:
            raise XMLError("XML body is not encodable as UTF-8") from None
    elif isinstance(body, bytes | bytearray | memoryview):
        raw = bytes(body)
    else:
        raise XMLError(f"XML body must be bytes or str, not {type(body).__name__}")
    if len(raw) > max_bytes:
        raise XMLError(f"XML body larger than {max_bytes} bytes")
    try:
        # Decoding ourselves and handing the parser a str makes it ignore any
        # encoding="..." declaration: the protocol is UTF-8 only (§1, NOT_UTF8).
        text = raw.decode("utf-8")  # pragma: no mutate
    except UnicodeDecodeError:
        raise XMLError("XML body is not valid UTF-8") from None
    if not text.strip():
        raise XMLError("XML body is empty")
    return text


def _parse(text: str) -> Element:
    try:
        # pragma: no mutate start (forbid_entities and forbid_external stand behind forbid_dtd:
        # with every DOCTYPE refused nothing can declare an entity or an external reference,
        # so their mutants are equivalent; they stay as a second lock)
        return fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        # pragma: no mutate end
    except DefusedXmlException as exc:
        raise XMLError(f"forbidden XML construct ({type(exc).__name__})") from None
    except ParseError as exc:
        raise XMLError(f"malformed XML ({exc})") from None
    except (ValueError, UnicodeError, RecursionError) as exc:
        # Defence in depth: no parser failure may escape as anything but XMLError.
        raise XMLError(f"unparseable XML ({type(exc).__name__})") from None


def _has_text(text: str | None) -> bool:
    return bool(text and text.strip())


def _fields(root: Element, root_tag: str) -> dict[str, str]:
    """Check that ``root`` is the flat ``<root_tag>`` envelope and return its fields."""
    if root.tag != root_tag:
        raise XMLError(f"root element is not <{root_tag}>")
    if root.attrib:
        raise XMLError(f"<{root_tag}> must not have attributes")
    if _has_text(root.text):
        raise XMLError(f"text directly inside <{root_tag}>")
    fields: dict[str, str] = {}
    for child in root:
        name = child.tag
        if not _NAME.fullmatch(name):
            raise XMLError(f"invalid field name {name[:40]!r}")
        if len(child) or child.attrib:
            raise XMLError(f"field <{name}> is not a plain value (children or attributes)")
        if name in fields:
            raise XMLError(f"duplicate field <{name}>")
        if _has_text(child.tail):
            raise XMLError(f"text directly inside <{root_tag}>")
        fields[name] = child.text or ""
    return fields


def from_xml(
    body: bytes | str, *, max_bytes: int = MAX_BODY_BYTES, root: str = "xml"
) -> dict[str, str]:
    """Parse a WeChat XML body into ``{field: text}``; raise :class:`XMLError` otherwise.

    CDATA and plain text give the same value; an empty element gives "". Duplicate fields
    are refused rather than resolved: with two ``total_fee`` values, which one was signed?
    ``root`` is ``"root"`` for the decrypted ``req_info`` of a refund notify (§7.3).
    """
    return _fields(_parse(_decode(body, max_bytes)), root)
