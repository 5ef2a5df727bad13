"""Property tests: signing and the XML envelope hold for any input, not just the vectors."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.wx import wx_sign
from wechat.pay_v2 import XMLError, from_xml, sign, to_xml, verify

KEY = "192006250b4c09247ec02edce69f6a2d"
# Field names as the protocol allows them; odd orders (upper before lower, "_" vs digits).
names = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=12).filter(
    lambda name: name[0].isalpha() or name[0] == "_"
)
# Any text XML 1.0 can carry (no control characters, no surrogates), empty included.
xml_text = st.text(
    st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="".join(map(chr, [*range(0, 9), 11, 12, *range(14, 32)]))
        + "\ufffe\uffff",
    ),
    max_size=40,
)
fields = st.dictionaries(names.filter(lambda n: n != "sign"), xml_text, max_size=12)
sign_types = st.sampled_from(["MD5", "HMAC-SHA256"])
relaxed = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@relaxed
@given(fields, sign_types)
def test_sign_agrees_with_the_protocol_sheets_reference(params, sign_type):
    assert sign(params, KEY, sign_type) == wx_sign(params, KEY, sign_type)


@relaxed
@given(fields, sign_types)
def test_what_is_signed_verifies_and_any_change_does_not(params, sign_type):
    signed = {**params, "sign": sign(params, KEY, sign_type)}
    assert verify(signed, KEY, sign_type)
    tampered = {**signed, "zz_extra": "1"}
    assert not verify(tampered, KEY, sign_type)
    assert not verify(signed, KEY[::-1], sign_type)


@relaxed
@given(fields)
def test_empty_values_do_not_change_the_signature(params):
    with_empty = {**params, "zz_empty": ""}
    assert sign(with_empty, KEY) == sign(params, KEY)


@relaxed
@given(st.dictionaries(names, st.one_of(xml_text, st.integers(0, 2**31 - 1)), max_size=12))
def test_xml_round_trip_keeps_every_value(params):
    assert from_xml(to_xml(params)) == {name: str(value) for name, value in params.items()}


@relaxed
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_xml_error_only(body):
    try:
        parsed = from_xml(body)
    except XMLError:
        return
    assert isinstance(parsed, dict)
    assert all(isinstance(v, str) for v in parsed.values())


@relaxed
@given(fields, sign_types, st.data())
def test_a_signed_notify_survives_the_wire(params, sign_type, data):
    signed = {**params, "sign": sign(params, KEY, sign_type)}
    received = from_xml(to_xml(signed))
    assert verify(received, KEY, sign_type)
