"""The trade-bill parser's edges that its mutants showed unpinned (wechat/bills.py): line
lengths, skipped lines, refund times, empty amounts, totals and the exact reasons given."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import io
from datetime import datetime

import pytest

from wechat.bills import (
    BEIJING,
    MAX_LINE_BYTES,
    BillFormatError,
    BillLineError,
    BillSummary,
    BillTotals,
    iter_trade_bill,
)

BOM = b"\xef\xbb\xbf"
COLUMNS = [
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号",
    "用户标识", "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额",
    "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态",
    "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注",
]
HEADER = ",".join(COLUMNS)
SUMMARY_HEADER = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)
SUMMARY = "`1,`1.01,`0.00,`0.00,`0.01000,`1.01,`0.00"


def row(columns=COLUMNS, **values) -> str:
    """A payment row of 1.01 yuan (fee 0.01) paid 2025-03-01 10:00:00; values by column."""
    line = {"交易时间": "2025-03-01 10:00:00", "商户订单号": "SO1", "交易状态": "SUCCESS",
            "应结订单金额": "1.01", "订单金额": "1.01", "手续费": "0.01000",
            "申请退款金额": "0.00", **values}
    return ",".join("`" + line.get(name, "") for name in columns)


def bill(*lines, header=HEADER, summary=(SUMMARY_HEADER, SUMMARY), eol="\r\n") -> bytes:
    return BOM + "".join(text + eol for text in (header, *lines, *summary)).encode("utf-8")


def read(data: bytes) -> list:
    return list(iter_trade_bill(io.BytesIO(data)))


def raises(data: bytes) -> str:
    with pytest.raises(BillFormatError) as caught:
        read(data)
    return str(caught.value)


# -- line lengths and skipped lines -----------------------------------------------------------

def test_a_line_of_max_line_bytes_is_read_and_one_byte_more_is_an_error():
    longest = row() + " " * (MAX_LINE_BYTES - len(row().encode()))
    items = read(bill(longest, longest + " ", eol="\n"))
    assert items[0].out_trade_no == "SO1" and items[0].line_no == 1
    assert items[1] == BillLineError(2, f"longer than {MAX_LINE_BYTES} bytes",
                                     (longest + " ")[:200])


def test_a_last_line_of_max_line_bytes_without_a_line_end_is_read():
    values = SUMMARY + " " * (MAX_LINE_BYTES - len(SUMMARY))
    data = bill(row(), summary=(SUMMARY_HEADER,), eol="\n") + values.encode()
    assert read(data)[-1] == BillSummary(trade_count=1, paid_total=101, refund_total=0,
                                         fee_total=1)


class Recording(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list = []

    def readline(self, size=-1) -> bytes:
        self.sizes.append(size)
        return super().readline(size)


def test_an_overlong_line_is_skipped_in_reads_of_at_most_max_line_bytes():
    stream = Recording(bill(row(), "`" + "x" * (5 * MAX_LINE_BYTES), row(商户订单号="SO2")))
    items = list(iter_trade_bill(stream))
    assert items[2].out_trade_no == "SO2"
    assert all(isinstance(size, int) and 0 < size <= MAX_LINE_BYTES + 1 for size in stream.sizes)


def test_an_error_item_keeps_its_line_number_and_its_text():
    not_utf8 = "`茶".encode("gbk")
    data = bill(row(), "PLACEHOLDER", "no backtick").replace(b"PLACEHOLDER", not_utf8)
    items = read(data)
    assert items[1] == BillLineError(2, "not UTF-8", not_utf8.decode("utf-8", "replace"))
    assert items[2] == BillLineError(3, "a data line must start with a backtick", "no backtick")


def test_an_empty_line_between_detail_lines_is_skipped():
    items = read(bill(row(), "", "   ", row(商户订单号="SO2")))
    assert [item.out_trade_no for item in items[:2]] == ["SO1", "SO2"]
    assert items[1].line_no == 2 and isinstance(items[2], BillSummary)


def test_raw_is_the_line_as_sent_with_only_its_line_end_taken_off():
    first, second = row(费率备注="X"), row(商户订单号="SO2") + "  "
    items = read(bill(first, second))
    assert (items[0].raw, items[1].raw) == (first, second)


# -- times and amounts ------------------------------------------------------------------------

REFUND_COLUMNS = [*COLUMNS[:14], "退款申请时间", "退款成功时间", *COLUMNS[14:]]


def test_a_refund_row_takes_its_time_from_the_refund_request_column():
    refund = row(REFUND_COLUMNS, 交易状态="REFUND", 退款申请时间="2025-03-01 19:30:05",
                 交易时间="2025-03-01 19:31:00", 退款成功时间="2025-03-01 19:32:00")
    (line, _) = read(bill(refund, header=",".join(REFUND_COLUMNS)))
    assert line.trade_time == datetime(2025, 3, 1, 19, 30, 5, tzinfo=BEIJING)


def test_a_payment_row_keeps_its_payment_time_even_with_a_refund_request_time():
    payment = row(REFUND_COLUMNS, 退款申请时间="2025-03-01 19:30:05")
    (line, _) = read(bill(payment, header=",".join(REFUND_COLUMNS)))
    assert line.trade_time == datetime(2025, 3, 1, 10, 0, 0, tzinfo=BEIJING)


def test_an_empty_amount_column_is_zero_fen():
    (line, _) = read(bill(row(手续费="", 申请退款金额="")))
    assert (line.total_fee, line.refund_fee, line.fee) == (101, 0, 0)


def test_a_bad_amount_or_time_is_quoted_in_at_most_40_characters():
    amount, when = "1" * 39 + "ab", "2025-03-01T10:00:00" + "0" * 30
    items = read(bill(row(订单金额=amount), row(交易时间=when)))
    assert items[0].reason == f"amount {amount[:40]!r} is not a yuan amount"
    assert items[1].reason == f"time {when[:40]!r} is not yyyy-MM-dd HH:mm:ss"


# -- the summary ------------------------------------------------------------------------------

def test_a_summary_without_amount_columns_reads_them_as_zero():
    (_, summary) = read(bill(row(), summary=("总交易单数", "`1")))
    assert summary == BillSummary(trade_count=1, paid_total=0, refund_total=0, fee_total=0)


def test_the_summary_fee_total_is_rounded_half_up_to_the_fen():
    values = "`1,`1.01,`0.00,`0.00,`-0.00650,`1.01,`0.00"
    (_, summary) = read(bill(row(), summary=(SUMMARY_HEADER, values)))
    assert summary.fee_total == -1
    values = "`1,`1.01,`0.00,`0.00,`0.00350,`1.01,`0.00"
    (_, summary) = read(bill(row(), summary=(SUMMARY_HEADER, values)))
    assert summary.fee_total == 0


NOT_A_COUNT = "unreadable summary: 总交易单数 is not a count"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("`1,`1.01,`0.00", "unreadable summary: 3 values for 7 columns"),
        ("`x,`1.01,`0.00,`0.00,`0.01,`1.01,`0.00", NOT_A_COUNT),
        ("`\uff11,`1.01,`0.00,`0.00,`0.01,`1.01,`0.00", NOT_A_COUNT),  # a full-width 1
    ],
)
def test_an_unreadable_summary_says_why(values, message):
    assert raises(bill(row(), summary=(SUMMARY_HEADER, values))) == message


def test_totals_add_up_refunds_fees_and_errors():
    totals = BillTotals()
    for item in read(bill(row(), row(手续费="0.00500"), "bad", "worse",
                          row(交易状态="REFUND", 订单金额="0.00", 申请退款金额="0.50"),
                          row(交易状态="REFUND", 订单金额="0.00", 申请退款金额="0.25")))[:-1]:
        totals.add(item)
    assert totals == BillTotals(trade_count=4, paid_total=202, refund_total=75, fee_total=4,
                                errors=2)


# -- files that are not a whole bill ----------------------------------------------------------

@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file: no header"),
        (BOM + b" \t<xml><return_code>FAIL</return_code></xml>\r\n",
         "this is an XML answer, not a bill"),
        (BOM + "交易时间,商户订单号,订单金额\r\n".encode(),
         "not a trade bill header (missing ['交易状态'])"),
        (BOM + "交易时间,商户订单号,交易状态,手续费\r\n".encode(),
         "not a trade bill header (missing an amount)"),
        (BOM + "交易时间,商户订单号,交易状态,订单金额,应结订单金额,总金额\r\n".encode()
         + b"\xff\r\n",
         "no summary: the bill is truncated"),
        (BOM + "交易时间,".encode() + b"\xff\r\n", "unreadable header: not UTF-8"),
        (bill(row(), summary=(SUMMARY_HEADER,)), "the summary header has no readable values line"),
        (bill(row(), summary=(SUMMARY_HEADER, SUMMARY, "`more")),
         "file line 5: text after the summary"),
    ],
)
def test_a_file_that_is_not_a_whole_bill_says_exactly_why(data, message):
    assert raises(data) == message
