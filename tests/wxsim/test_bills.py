"""The simulator's downloadbill (docs/protocol/wechat-pay-v2.md §14) and its bill faults.

The bill is read here with the csv module, following the notes, not with wechat.bills.
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import csv
import gzip
import io
import secrets
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.wx import wx_sign
from tests.wx import wx_xml as to_xml
from tests.wxsim.client import APPID, KEY, MCH_ID, PAYER, parse_xml, wait_until
from wechat.bills import BillLine, BillTotals, check_summary, iter_trade_bill
from wechat.pay_v2 import WxPayClient, WxPayConfig

BEIJING = timezone(timedelta(hours=8))
SUMMARY_HEADER = ["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额",
                  "订单总金额", "申请退款总金额"]


def today(sim) -> str:
    return datetime.fromtimestamp(sim.now(), BEIJING).strftime("%Y%m%d")


def downloadbill(wx, bill_date, *, key=KEY, **extra) -> bytes:
    fields = {"appid": APPID, "mch_id": MCH_ID, "nonce_str": secrets.token_hex(8),
              "bill_date": bill_date, "bill_type": "ALL", **extra}
    fields["sign"] = wx_sign(fields, key, fields.get("sign_type", "MD5"))
    response = wx.http.post(wx.base_url + "/pay/downloadbill", data=to_xml(fields), timeout=5)
    assert response.status_code == 200
    return response.content


def read_bill(body: bytes) -> tuple[list[dict[str, str]], dict[str, str]]:
    """§14.11 with the csv module: BOM, CRLF, header, backtick rows, summary last."""
    assert body.startswith(b"\xef\xbb\xbf") and body.endswith(b"\r\n")
    text = body.decode("utf-8-sig")
    assert "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(text.split("\r\n")[:-1], quoting=csv.QUOTE_NONE))
    header, *details, summary_header, summary = rows
    assert summary_header == SUMMARY_HEADER
    for row in [*details, summary]:
        assert all(value.startswith("`") for value in row), row
    lines = [dict(zip(header, (v[1:] for v in row), strict=True)) for row in details]
    return lines, dict(zip(summary_header, (v[1:] for v in summary), strict=True))


def refund(wx, trade, out_refund_no, refund_fee):
    answer = wx.call("/secapi/pay/refund", {
        "out_trade_no": trade["_out_trade_no"], "out_refund_no": out_refund_no,
        "total_fee": 101, "refund_fee": refund_fee})
    assert answer["result_code"] == "SUCCESS", answer


def test_a_day_with_a_payment_and_a_refund(wx, sim, paid_trade):
    refund(wx, paid_trade, "R-BILL-1", 30)
    wait_until(lambda: sim.refunds["R-BILL-1"].status == "SUCCESS")
    lines, summary = read_bill(downloadbill(wx, today(sim)))
    payment, back = lines
    trade = sim.trades[paid_trade["_out_trade_no"]]
    assert len(payment) == 27
    assert payment["交易时间"] == datetime.strptime(trade.time_end, "%Y%m%d%H%M%S").strftime(
        "%Y-%m-%d %H:%M:%S")
    assert (payment["公众账号ID"], payment["商户号"], payment["特约商户号"]) == (APPID, MCH_ID, "0")
    assert payment["微信订单号"] == paid_trade["transaction_id"]
    assert payment["商户订单号"] == paid_trade["_out_trade_no"]
    assert (payment["用户标识"], payment["交易类型"], payment["交易状态"]) == (
        PAYER, "JSAPI", "SUCCESS")
    assert (payment["应结订单金额"], payment["订单金额"], payment["申请退款金额"]) == (
        "1.01", "1.01", "0.00")
    assert (payment["微信退款单号"], payment["商户退款单号"], payment["退款状态"]) == ("0", "0", "")
    assert payment["手续费"] == "0.01000" and payment["费率"] == "0.60%"
    assert payment["商户数据包"] == "order-42"
    assert back["交易状态"] == "REFUND" and back["商户订单号"] == paid_trade["_out_trade_no"]
    assert (back["商户退款单号"], back["退款金额"], back["申请退款金额"]) == (
        "R-BILL-1", "0.30", "0.30")
    assert (back["应结订单金额"], back["订单金额"], back["退款状态"]) == ("0.00", "0.00", "SUCCESS")
    assert back["微信退款单号"] == sim.refunds["R-BILL-1"].refund_id
    assert back["手续费"] == "0.00000"  # 0.6% of 0.30 rounds to nothing
    assert summary == {"总交易单数": "2", "应结订单总金额": "1.01", "退款总金额": "0.30",
                       "充值券退款总金额": "0.00", "手续费总金额": "0.01000",
                       "订单总金额": "1.01", "申请退款总金额": "0.30"}


def test_the_summary_is_the_sum_of_the_lines(wx, sim, receiver):
    for fee in (101, 2000, 99999):
        trade = wx.unifiedorder(receiver.url, total_fee=fee)
        assert wx.pay(trade["_out_trade_no"]).status_code == 200
    lines, summary = read_bill(downloadbill(wx, today(sim)))
    assert int(summary["总交易单数"]) == len(lines) == 3
    for column, total in (("订单金额", "订单总金额"), ("手续费", "手续费总金额")):
        assert sum(Decimal(line[column]) for line in lines) == Decimal(summary[total])
    assert summary["订单总金额"] == "1021.00"


def test_a_day_without_trades_has_no_bill(wx, sim, receiver):
    wx.unifiedorder(receiver.url)  # ordered, never paid: not in any bill (§14.1)
    answer = parse_xml(downloadbill(wx, today(sim)))
    assert answer == {"return_code": "FAIL", "return_msg": "No Bill Exist",
                      "error_code": "20002"}


def test_another_day_does_not_hold_todays_payment(wx, sim, paid_trade):
    yesterday = (datetime.fromtimestamp(sim.now(), BEIJING) - timedelta(days=1)).strftime(
        "%Y%m%d")
    assert parse_xml(downloadbill(wx, yesterday))["return_msg"] == "No Bill Exist"


def test_gzip_on_request(wx, sim, paid_trade):
    body = downloadbill(wx, today(sim), tar_type="GZIP")
    assert body[:2] == b"\x1f\x8b"
    lines, _ = read_bill(gzip.decompress(body))
    assert [line["商户订单号"] for line in lines] == [paid_trade["_out_trade_no"]]


def test_hmac_signed_requests_are_served(wx, sim, paid_trade):
    lines, _ = read_bill(downloadbill(wx, today(sim), sign_type="HMAC-SHA256"))
    assert len(lines) == 1


@pytest.mark.parametrize(
    ("extra", "return_msg"),
    [
        ({"key": "0" * 32}, "sign error"),
        ({"bill_date": "2025-03-01"}, "invalid bill_date"),
        ({"bill_date": "20250230"}, "invalid bill_date"),
        ({"bill_date": ""}, "missing parameter"),
        ({"bill_type": "REVOKED"}, "invalid bill_type"),
        ({"tar_type": "ZIP"}, "invalid tar_type, Only GZIP supported"),
    ],
)
def test_bad_requests_get_the_failure_xml(wx, sim, extra, return_msg):
    bill_date = extra.pop("bill_date", today(sim))
    answer = parse_xml(downloadbill(wx, bill_date, **extra))
    assert answer["return_code"] == "FAIL" and answer["return_msg"] == return_msg
    assert answer["error_code"] == "20001" and "sign" not in answer


def test_a_future_day_is_an_invalid_date(wx, sim):
    tomorrow = (datetime.fromtimestamp(sim.now(), BEIJING) + timedelta(days=1)).strftime(
        "%Y%m%d")
    assert parse_xml(downloadbill(wx, tomorrow))["return_msg"] == "invalid bill_date"


def test_system_error_fault(wx, sim):
    wx.control("POST", "/sim/faults", {"path": "/pay/downloadbill", "mode": "systemerror"})
    assert parse_xml(downloadbill(wx, today(sim))) == {
        "return_code": "FAIL", "return_msg": "System Error", "error_code": "100"}


# -- a bill that disagrees with the shop -----------------------------------------------------

def tamper(wx, body):
    response = wx.control("POST", "/sim/bills/faults", body)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_dropped_trade_and_a_changed_amount(wx, sim, receiver):
    kept, dropped = (wx.unifiedorder(receiver.url)["_out_trade_no"] for _ in range(2))
    for out_trade_no in (kept, dropped):
        wx.pay(out_trade_no)
    day = datetime.fromtimestamp(sim.now(), BEIJING).strftime("%Y-%m-%d")
    tamper(wx, {"date": day, "drop": dropped, "amount": {kept: 5000}})
    lines, summary = read_bill(downloadbill(wx, today(sim)))
    assert [line["商户订单号"] for line in lines] == [kept]
    assert lines[0]["订单金额"] == lines[0]["应结订单金额"] == "50.00"
    assert (summary["总交易单数"], summary["订单总金额"]) == ("1", "50.00")
    assert wx.control("GET", "/sim/bills/faults").json() == {
        "bills": {day: {"drop": [dropped], "amount": {kept: 5000}, "extra_refunds": [],
                        "truncate": False}}}
    wx.control("DELETE", "/sim/bills/faults")
    assert len(read_bill(downloadbill(wx, today(sim)))[0]) == 2


def test_an_extra_refund_and_a_truncated_bill(wx, sim, paid_trade):
    day = today(sim)
    tamper(wx, {"date": day, "extra_refund": {"out_trade_no": paid_trade["_out_trade_no"],
                                              "refund_fee": 40, "out_refund_no": "R-GHOST"}})
    lines, summary = read_bill(downloadbill(wx, day))
    ghost = lines[-1]
    assert (ghost["交易状态"], ghost["商户退款单号"], ghost["申请退款金额"]) == (
        "REFUND", "R-GHOST", "0.40")
    assert ghost["微信订单号"] == paid_trade["transaction_id"] and ghost["微信退款单号"]
    assert summary["申请退款总金额"] == "0.40"
    tamper(wx, {"date": day, "truncate": True})
    body = downloadbill(wx, day).decode("utf-8-sig")
    assert "总交易单数" not in body and body.count("\r\n") == 3


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"date": "yesterday", "drop": "X"},
        {"date": "20250301"},
        {"date": "20250301", "amount": {"X": -1}},
        {"date": "20250301", "amount": {"X": "1.00"}},
        {"date": "20250301", "extra_refund": {"out_trade_no": "X"}},
        {"date": "20250301", "bogus": 1},
    ],
)
def test_bad_bill_faults_are_400(wx, body):
    assert wx.control("POST", "/sim/bills/faults", body).status_code == 400


def test_success_and_refund_bills_have_their_own_columns(wx, sim, paid_trade):
    refund(wx, paid_trade, "R-BILL-2", 10)
    paid, _ = read_bill(downloadbill(wx, today(sim), bill_type="SUCCESS"))
    assert len(paid) == 1 and len(paid[0]) == 20 and "申请退款金额" not in paid[0]
    refunds, _ = read_bill(downloadbill(wx, today(sim), bill_type="REFUND"))
    assert len(refunds) == 1 and len(refunds[0]) == 29 and refunds[0]["退款申请时间"]


def test_the_shops_client_and_parser_read_the_simulators_bill(wx, sim, sim_server, paid_trade):
    client = WxPayClient(WxPayConfig(appid=APPID, mch_id=MCH_ID, api_key=KEY,
                                     api_base=sim_server.base_url))
    out = io.BytesIO()
    day = datetime.fromtimestamp(sim.now(), BEIJING).date()
    assert client.download_bill(bill_date=day, destination=out, tar_type="GZIP").gzip
    *lines, summary = iter_trade_bill(io.BytesIO(out.getvalue()))
    totals = BillTotals()
    for line in lines:
        assert isinstance(line, BillLine)
        totals.add(line)
    assert [(line.out_trade_no, line.total_fee) for line in lines] == [
        (paid_trade["_out_trade_no"], 101)]
    assert check_summary(totals, summary) == []
