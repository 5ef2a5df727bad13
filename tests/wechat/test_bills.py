"""The trade-bill format shared by v2 and v3 (docs/protocol/wechat-pay-v2.md §14.4 to §14.11)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import gzip
import io
from datetime import datetime

import pytest

from wechat.bills import (
    BEIJING,
    MAX_LINE_BYTES,
    BillFormatError,
    BillLine,
    BillLineError,
    BillSummary,
    BillTotals,
    check_summary,
    iter_trade_bill,
)

BOM = b"\xef\xbb\xbf"
HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
SUMMARY_HEADER = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)


def payment(out_trade_no="SO1", amount="1.01", fee="0.01000", when="2025-03-01 10:00:00"):
    values = [when, "wxd930ea5d5a258f4f", "10000100", "0", "", "4200000001", out_trade_no,
              "oOPENID", "JSAPI", "SUCCESS", "OTHERS", "CNY", amount, "0.00", "0", "0", "0.00",
              "0.00", "", "", "茶", "", fee, "0.60%", amount, "0.00", ""]
    return ",".join("`" + v for v in values)


def bill(*lines, summary="`1,`1.01,`0.00,`0.00,`0.01000,`1.01,`0.00", bom=True, eol="\r\n"):
    rows = [HEADER, *lines] + ([SUMMARY_HEADER, summary] if summary is not None else [])
    return (BOM if bom else b"") + "".join(row + eol for row in rows).encode("utf-8")


def read(data: bytes) -> list:
    return list(iter_trade_bill(io.BytesIO(data)))


def test_the_notes_example_reads_as_a_payment_and_its_refund(bill_example):
    pay, refund, summary = read(bill_example)
    assert pay == BillLine(
        line_no=1,
        trade_time=datetime(2025, 3, 1, 13, 2, 7, tzinfo=BEIJING),
        appid="wxd930ea5d5a258f4f",
        mch_id="10000100",
        transaction_id="4200002501202503011000000002",
        out_trade_no="SO20250301000002",
        openid="oExample_openid_2",
        trade_type="JSAPI",
        trade_state="SUCCESS",
        total_fee=2000,
        wechat_refund_id="",
        out_refund_no="",
        refund_fee=0,
        refund_status="",
        fee=12,
        raw=bill_example.decode("utf-8-sig").split("\r\n")[1],
    )
    assert refund.line_no == 2 and refund.trade_state == "REFUND"
    assert (refund.wechat_refund_id, refund.out_refund_no) == (
        "50300000012025030100000000001", "RF20250301000001")
    assert (refund.total_fee, refund.refund_fee, refund.fee) == (0, 2000, -12)
    assert refund.refund_status == "SUCCESS"
    assert refund.trade_time == datetime(2025, 3, 1, 19, 30, 5, tzinfo=BEIJING)
    assert summary == BillSummary(trade_count=2, paid_total=2000, refund_total=2000, fee_total=0)
    totals = BillTotals()
    for item in (pay, refund):
        totals.add(item)
    assert check_summary(totals, summary) == []


def test_the_summary_check_names_each_difference():
    totals = BillTotals(trade_count=2, paid_total=2000, refund_total=0, fee_total=12)
    summary = BillSummary(trade_count=3, paid_total=2000, refund_total=500, fee_total=12)
    assert check_summary(totals, summary) == [
        "trade_count: the lines give 2, the summary says 3",
        "refund_total: the lines give 0, the summary says 500",
    ]


def test_lf_line_ends_and_no_bom_are_accepted():
    (line, summary) = read(bill(payment(), bom=False, eol="\n"))
    assert line.total_fee == 101 and summary.trade_count == 1


def test_gzip_stream_is_read_line_by_line():
    (line, _) = read(gzip.decompress(gzip.compress(bill(payment()))))
    assert line.out_trade_no == "SO1"
    with gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(bill(payment())))) as stream:
        assert [type(item) for item in iter_trade_bill(stream)] == [BillLine, BillSummary]


def test_columns_are_mapped_by_name_and_unknown_ones_tolerated():
    header = "新列," + HEADER.replace("商户订单号,用户标识", "用户标识,商户订单号")
    row = payment().replace("`SO1,`oOPENID", "`oOPENID,`SO1")
    data = bill(summary=None).replace(HEADER.encode(), header.encode())
    summary = "`1,`1.01,`0.00,`0.00,`0.01,`1.01,`0.00"
    data = data + f"`x,{row}\r\n{SUMMARY_HEADER}\r\n{summary}\r\n".encode()
    (line, _) = read(data)
    assert (line.out_trade_no, line.openid) == ("SO1", "oOPENID")


def test_a_bad_line_is_an_error_item_and_the_import_goes_on():
    items = read(bill(payment("SO1"), "no backtick", payment("SO2", amount="1.015"),
                      payment("SO3", when="2025/03/01"), payment("SO4") + ",`extra",
                      b"`\xff\xfe".decode("latin-1"), payment("SO5")))
    errors = [item for item in items if isinstance(item, BillLineError)]
    assert [e.line_no for e in errors] == [2, 3, 4, 5, 6]
    assert "backtick" in errors[0].reason and "fen" in errors[1].reason
    assert "yyyy-MM-dd" in errors[2].reason and "28 values for 27 columns" in errors[3].reason
    assert [i.out_trade_no for i in items if isinstance(i, BillLine)] == ["SO1", "SO5"]
    assert isinstance(items[-1], BillSummary)


def test_a_line_that_is_not_utf8_is_an_error_item():
    data = bill(payment("SO1"), "PLACEHOLDER").replace(b"PLACEHOLDER", "`茶".encode("gbk"))
    items = read(data)
    assert isinstance(items[1], BillLineError) and items[1].reason == "not UTF-8"


def test_an_overlong_line_is_skipped_without_reading_it_whole():
    items = read(bill(payment("SO1"), "`" + "x" * (3 * MAX_LINE_BYTES), payment("SO2")))
    assert isinstance(items[1], BillLineError) and "longer" in items[1].reason
    assert items[2].out_trade_no == "SO2" and items[2].line_no == 3


def test_the_fee_is_rounded_to_the_fen_and_amounts_use_decimal():
    (line, _) = read(bill(payment(amount="0.29", fee="0.00174")))
    assert (line.total_fee, line.fee) == (29, 0)
    (line, _) = read(bill(payment(amount="100000.07", fee="600.00500")))
    assert (line.total_fee, line.fee) == (10000007, 60001)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no header"),
        (BOM + b"<xml><return_code>FAIL</return_code></xml>", "XML"),
        (BOM + b"a,b,c\r\n", "not a trade bill"),
        (bill(payment(), summary=None), "truncated"),
        (bill(payment())[: -len("`0.00\r\n")], "unreadable summary"),
        (bill(payment()) + b"`more\r\n", "after the summary"),
        (bill(payment()).rsplit(b"\r\n", 2)[0] + b"\r\n", "no readable values"),
    ],
)
def test_a_file_that_is_not_a_whole_bill_raises(data, message):
    with pytest.raises(BillFormatError, match=message):
        read(data)
