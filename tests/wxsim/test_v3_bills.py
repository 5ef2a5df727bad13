"""v3 trade bill (§9): tradebill gives a download_url and the SHA1 of the uncompressed file;
the download is a signed GET answered unsigned, gzip when asked. Downloaded with the shop's
own client, which checks the SHA1, and by hand."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import gzip
import hashlib
import io
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest

from tests.wxsim.client import PAYER, new_out_trade_no
from wechat.pay_v3 import BEIJING, BillIntegrityError, InvalidRequest, NoStatement


def today(sim):
    return datetime.fromtimestamp(sim.now(), BEIJING).date()


@pytest.fixture
def day_of_trades(v3, wx, v3_receiver, sim) -> list[str]:
    """Two paid v3 orders, one partly refunded, today."""
    numbers = []
    for total in (101, 250):
        number = new_out_trade_no()
        prepay_id = v3.jsapi_prepay(out_trade_no=number, description="测试商店-商品",
                                    total=total, openid=PAYER,
                                    notify_url=v3_receiver.url).prepay_id
        assert wx.control("POST", "/sim/pay", {"payment": v3.jsapi_params(prepay_id)}).ok
        numbers.append(number)
    v3.refund(out_refund_no="R" + numbers[1], out_trade_no=numbers[1], total=250, refund=50)
    return numbers


def test_bill_downloads_and_matches_its_sha1(v3, sim, day_of_trades, sim_server):
    bill = v3.trade_bill(bill_date=today(sim))

    assert bill.hash_type == "SHA1"
    assert urlsplit(bill.download_url).netloc == urlsplit(sim_server.base_url).netloc
    assert urlsplit(bill.download_url).path == "/v3/billdownload/file"
    out = io.BytesIO()
    size = v3.download_bill(bill, out)  # raises BillIntegrityError on a SHA1 mismatch
    content = out.getvalue()
    assert size == len(content)
    assert hashlib.sha1(content).hexdigest() == bill.hash_value
    text = content.decode("utf-8-sig")
    assert text.startswith("交易时间,公众账号ID,商户号")
    for number in day_of_trades:
        assert f"`{number}" in text
    assert "`R" + day_of_trades[1] in text and "`0.50" in text  # the refund row, in yuan


def test_gzip_bill_hash_is_of_the_uncompressed_file(v3, v3_by_hand, sim, day_of_trades):
    bill = v3.trade_bill(bill_date=today(sim), tar_type="GZIP")
    target = bill.download_url.split("//", 1)[1].split("/", 1)[1]

    response = v3_by_hand.call("GET", "/" + target)

    assert response.status_code == 200
    assert response.content[:2] == b"\x1f\x8b"
    assert "Wechatpay-Signature" not in response.headers  # the file is not signed (§9.2)
    assert hashlib.sha1(gzip.decompress(response.content)).hexdigest() == bill.hash_value
    out = io.BytesIO()
    v3.download_bill(bill, out)
    assert out.getvalue() == gzip.decompress(response.content)


def test_bill_types(v3, sim, day_of_trades):
    payments = io.BytesIO()
    v3.download_bill(v3.trade_bill(bill_date=today(sim), bill_type="SUCCESS"), payments)
    assert "`R" not in payments.getvalue().decode("utf-8-sig")
    with pytest.raises(NoStatement):  # no special merchants' trades here
        v3.trade_bill(bill_date=today(sim), bill_type="ALL_SPECIAL")


def test_day_without_trades_is_no_statement(v3, sim):
    with pytest.raises(NoStatement) as raised:
        v3.trade_bill(bill_date=today(sim) - timedelta(days=1))
    assert raised.value.status == 400 and raised.value.code == "NO_STATEMENT_EXIST"


@pytest.mark.parametrize("days", [-1, 93])
def test_future_or_too_old_day_is_invalid_request(v3, sim, days):
    with pytest.raises(InvalidRequest) as raised:
        v3.trade_bill(bill_date=today(sim) - timedelta(days=days))
    assert raised.value.code == "INVALID_REQUEST"


@pytest.mark.parametrize(
    "query",
    ["bill_date=20250101", "", "bill_date={day}&bill_type=EVERYTHING",
     "bill_date={day}&tar_type=ZIP", "bill_date={day}&mchid=10000100"],
)
def test_bad_query_is_param_error(v3_by_hand, sim, query):
    target = "/v3/bill/tradebill" + ("?" + query.format(day=today(sim).isoformat())
                                     if query else "")
    response = v3_by_hand.call("GET", target)
    assert response.status_code == 400 and response.json()["code"] == "PARAM_ERROR"


def test_download_needs_a_signature_and_a_live_token(v3, v3_by_hand, sim, day_of_trades):
    bill = v3.trade_bill(bill_date=today(sim))
    target = "/" + bill.download_url.split("//", 1)[1].split("/", 1)[1]
    unsigned = v3_by_hand.http.get(bill.download_url, timeout=5)
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "SIGN_ERROR"
    unknown = v3_by_hand.call("GET", "/v3/billdownload/file?token=nothing")
    assert unknown.status_code == 404
    later = sim.now() + 301
    sim.now = lambda: later

    expired = v3_by_hand.call("GET", target)

    assert expired.status_code == 400 and expired.json()["code"] == "INVALID_REQUEST"


def test_damaged_download_fails_the_sha1_check(v3, wx, sim, day_of_trades):
    bill = v3.trade_bill(bill_date=today(sim))
    fault = {"path": "/v3/billdownload/file", "mode": "garbage"}
    assert wx.control("POST", "/sim/faults", fault).status_code == 200
    with pytest.raises(BillIntegrityError):
        v3.download_bill(bill, io.BytesIO())


def test_bill_faults_apply_to_the_v3_file(v3, wx, sim, day_of_trades):
    wx.control("POST", "/sim/bills/faults",
               {"date": today(sim).isoformat(), "drop": day_of_trades[0]})
    out = io.BytesIO()
    v3.download_bill(v3.trade_bill(bill_date=today(sim)), out)
    text = out.getvalue().decode("utf-8-sig")
    assert day_of_trades[0] not in text and day_of_trades[1] in text
