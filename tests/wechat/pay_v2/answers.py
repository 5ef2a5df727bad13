"""WeChat Pay's merchant API as the client tests fake it: signed answers, and the fields
a request sent (shared by test_client.py and test_client_refunds.py)."""

import responses

from tests.wx import OFFICIAL_APPID, OFFICIAL_KEY, OFFICIAL_MCH_ID, cdata_xml, signed
from wechat.pay_v2 import from_xml

BASE = "https://api.mch.weixin.qq.com"


def wechat_answer(sign_type: str = "MD5", key: str = OFFICIAL_KEY, **fields: str) -> bytes:
    """A signed SUCCESS answer as WeChat sends it; ``fields`` add to or override the base."""
    base = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": OFFICIAL_APPID,
        "mch_id": OFFICIAL_MCH_ID,
        "nonce_str": "IITRi8Iabbblz1Jc",
        "result_code": "SUCCESS",
    }
    return cdata_xml(signed({**base, **fields}, key, sign_type))


def sent_fields(mocked: responses.RequestsMock, index: int = 0) -> dict[str, str]:
    return from_xml(mocked.calls[index].request.body)
