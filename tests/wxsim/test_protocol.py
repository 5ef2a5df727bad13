"""wxsim's own signing and XML against the official vectors (§2.2, §13)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import pytest

from tests.wxsim.client import wx_sign
from wxsim.protocol import HMAC_SHA256, MD5, XmlError, parse_xml, sign, to_xml, verify

KEY = "192006250b4c09247ec02edce69f6a2d"
OFFICIAL = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}


@pytest.mark.parametrize("signer", [sign, wx_sign], ids=["wxsim", "test-helper"])
def test_official_vectors(signer):
    assert signer(OFFICIAL, KEY, MD5) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert signer(OFFICIAL, KEY, HMAC_SHA256) == (
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    )
    with_type = {**OFFICIAL, "sign_type": "HMAC-SHA256"}
    assert signer(with_type, KEY, HMAC_SHA256) == (
        "2C9DF1156522C0B2B03B4DBF3BCA5CACB602CBD5CA0F9E112458CF3E9855303B"
    )
    assert signer({"test1": "test1", "test2": "test2"}, KEY, MD5) == (
        "1E3A8D73B5A4AEE787C0F68B5DAB8520"
    )


def test_pay_sign_vector_and_empty_fields_are_skipped():
    pay = {
        "appId": "wxd678efh567hg6787",
        "timeStamp": "1490840662",
        "nonceStr": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "package": "prepay_id=wx2017033010242291fcfe0db70013231072",
        "signType": "MD5",
        "empty": "",
    }
    assert sign(pay, "qazwsxedcrfvtgbyhnujmikolp111111") == "22D9B4E54AB1950F51E0649E8810ACD6"


def test_verify_rejects_lowercase_md5():
    fields = {**OFFICIAL, "sign": "9a0a8659f005d6984697e2ca0a9cf3b7"}
    assert not verify(fields, KEY, MD5)
    assert verify({**fields, "sign": fields["sign"].upper()}, KEY, MD5)


def test_xml_round_trip_keeps_cdata_terminator_and_bare_ints():
    body = to_xml({"a": "x]]>y", "n": 5, "zh": "腾讯-游戏", "empty": ""})
    assert b"<n>5</n>" in body
    assert b"<empty>" not in body
    assert parse_xml(body) == {"a": "x]]>y", "n": "5", "zh": "腾讯-游戏"}


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE xml [<!ENTITY e "boom">]><xml><a>&e;</a></xml>',
        b'<!DOCTYPE xml SYSTEM "file:///etc/passwd"><xml><a>1</a></xml>',
        b"<xml><a><b>nested</b></a></xml>",
        b"<xml><a>1</a><a>2</a></xml>",
        b"<root><a>1</a></root>",
        b"<xml><a>1</a>",
        b"not xml at all",
    ],
)
def test_parse_xml_refuses_dtds_nesting_and_malformed_documents(body):
    with pytest.raises(XmlError):
        parse_xml(body)
