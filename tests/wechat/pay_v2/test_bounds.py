"""wechat.pay_v2 at its edges: what mutation testing found no test for (docs/RELIABILITY.md,
"Mutation testing")."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import pytest

from tests.wx import OFFICIAL_KEY, signed, wx_encrypt_req_info
from wechat.pay_v2 import MAX_BODY_BYTES, ReqInfoError, XMLError, decrypt_req_info, from_xml, xml
from wechat.pay_v2.signing import verify


@pytest.mark.parametrize("sign", [12345, b"9A0A8659F005D6984697E2CA0A9CF3B7", ["x"]])
def test_a_sign_that_is_not_text_is_false_not_an_exception(sign):
    # verify takes any mapping (parsed XML gives str, a caller may not): junk is just junk.
    assert verify({"total_fee": "1", "sign": sign}, OFFICIAL_KEY) is False


def test_a_genuine_sign_is_still_checked_after_the_type_check():
    assert verify(signed({"total_fee": "1"}, key=OFFICIAL_KEY), OFFICIAL_KEY) is True


# What from_xml says about each body it refuses: staff read it in the notify ledger
# ("Unreadable XML: …"), so it must name the fault.
REFUSED = {
    "root-attribute": (b'<xml a="1"><x>1</x></xml>', "<xml> must not have attributes"),
    "root-text": (b"<xml>hi<x>1</x></xml>", "text directly inside <xml>"),
    "text-after-a-field": (b"<xml><x>1</x>tail</xml>", "text directly inside <xml>"),
    "field-name": (
        b"<xml><x." + b"a" * 50 + b">1</x." + b"a" * 50 + b"></xml>",
        "invalid field name " + repr("x." + "a" * 38),
    ),
    "nested": (
        b"<xml><x><y>1</y></x></xml>",
        "field <x> is not a plain value (children or attributes)",
    ),
    "field-attribute": (
        b'<xml><x a="1">1</x></xml>',
        "field <x> is not a plain value (children or attributes)",
    ),
    "root": (b"<root><x>1</x></root>", "root element is not <xml>"),
    "blank": (b"  ", "XML body is empty"),
    "not-utf8": (b"\xff", "XML body is not valid UTF-8"),
    "not-bytes": (12, "XML body must be bytes or str, not int"),
    "lone-surrogate": ("<xml>\ud800</xml>", "XML body is not encodable as UTF-8"),
    "doctype": (b"<!DOCTYPE x><xml/>", "forbidden XML construct (DTDForbidden)"),
    "cut-short": (b"<xml><x>", "malformed XML (no element found: line 1, column 8)"),
    "duplicate": (b"<xml><a>1</a><a>2</a></xml>", "duplicate field <a>"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_every_refusal_names_its_fault(case):
    body, message = REFUSED[case]

    with pytest.raises(XMLError) as refused:
        from_xml(body)

    assert str(refused.value) == message


def test_the_size_limit_is_named_in_the_refusal():
    with pytest.raises(XMLError) as refused:
        from_xml(b"<xml><a>1</a></xml>", max_bytes=10)

    assert str(refused.value) == "XML body larger than 10 bytes"


@pytest.mark.parametrize("failure", [ValueError, UnicodeError, RecursionError])
def test_any_other_parser_failure_is_an_xml_error_too(monkeypatch, failure):
    # Defence in depth: whatever the parser (defusedxml, not ours) raises, callers only
    # ever see XMLError, with the kind of failure named.
    def fail(*args, **kwargs):
        raise failure("parser gave up")

    monkeypatch.setattr(xml, "fromstring", fail)

    with pytest.raises(XMLError) as refused:
        from_xml(b"<xml><a>1</a></xml>")

    assert str(refused.value) == f"unparseable XML ({failure.__name__})"


# req_info (§7.3): each way it is not genuine says which, for the ledger's "Not authentic: …".
def test_a_req_info_of_exactly_the_size_limit_is_decrypted_and_one_more_refused():
    with pytest.raises(ReqInfoError) as refused:
        decrypt_req_info("A" * MAX_BODY_BYTES, OFFICIAL_KEY)
    assert str(refused.value) == "req_info has invalid padding (wrong key or damaged)"

    with pytest.raises(ReqInfoError) as refused:
        decrypt_req_info("A" * (MAX_BODY_BYTES + 1), OFFICIAL_KEY)
    assert str(refused.value) == "req_info is too long"


@pytest.mark.parametrize(
    ("req_info", "message"),
    [
        ("QUJDREVGR0hJ*SktMTU5PUA==", "req_info is not base64"),
        ("QUJD", "req_info is not a whole number of AES blocks"),
    ],
)
def test_a_req_info_that_is_not_a_ciphertext_says_why(req_info, message):
    with pytest.raises(ReqInfoError) as refused:
        decrypt_req_info(req_info, OFFICIAL_KEY)

    assert str(refused.value) == message


def test_a_req_info_that_decrypts_to_something_else_says_what():
    not_root = wx_encrypt_req_info(b"<xml><a>1</a></xml>", OFFICIAL_KEY)

    with pytest.raises(ReqInfoError) as refused:
        decrypt_req_info(not_root, OFFICIAL_KEY)

    assert str(refused.value) == (
        "req_info did not decrypt to a <root> document: root element is not <root>"
    )
