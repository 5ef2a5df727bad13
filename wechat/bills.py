"""WeChat Pay's daily trade bill: the file format shared by v2 ``downloadbill`` and v3
``tradebill`` (docs/protocol/wechat-pay-v2.md §14.4 to §14.7, wechat-pay-v3.md §9.3).

Neutral ground: imported by ``wechat.pay_v2`` and ``wechat.pay_v3`` alike, it imports
neither (they are independent), nor Django.

:func:`iter_trade_bill` reads the file line by line from a binary stream, so a large day
never sits in memory. A line it cannot read becomes a :class:`BillLineError` item and the
import goes on; only a file that is not a bill at all, or is cut short (no summary, §14.9),
raises :class:`BillFormatError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import BinaryIO

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
BOM = b"\xef\xbb\xbf"
SUMMARY_MARK = "总交易单数"
# Long enough for any real row (29 columns, body ≤ 128 chars, attach ≤ 127); a longer "line"
# is not a bill line, and reading it whole would defeat streaming.
MAX_LINE_BYTES = 8 * 1024

_AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_TIME_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
# Payment and refund rows repeat zeros in the columns that do not apply to them (§14.5).
_FILLER_IDS = ("", "0")

# Column names (§14.5), mapped by name, never by position. For each field, the first
# column present wins: the current format first, then the legacy 24-column one.
_REQUIRED = ("交易时间", "商户订单号", "交易状态")
_TOTAL_COLUMNS = ("订单金额", "应结订单金额", "总金额")  # total_fee/100 first
_REFUND_COLUMNS = ("申请退款金额", "退款金额")  # refund_fee/100 first
_SUMMARY_PAID = ("订单总金额", "应结订单总金额", "总交易额")
_SUMMARY_REFUND = ("申请退款总金额", "退款总金额", "总退款金额")


class BillFormatError(ValueError):
    """The stream is not a complete trade bill: no header, a header without the columns
    every bill has, a missing or broken summary (a truncated download, §14.9), or lines
    after the summary. Retry the download; never take the lines read so far as the day."""


@dataclass(frozen=True)
class BillLine:
    """One detail row: a payment (``trade_state`` SUCCESS) or one refund (REFUND), §14.7.

    Money in integer fen. ``total_fee`` is the order amount (订单金额, ``total_fee``; 0 on
    refund rows); ``refund_fee`` the refund asked for (申请退款金额, ``refund_fee``; 0 on
    payment rows); ``fee`` WeChat's commission (手续费, negative on refund rows, rounded
    half up to the fen). The refund ids are "" on payment rows (the file's filler ``0``).
    """

    line_no: int  # 1-based detail line number (the first line after the header is 1)
    trade_time: datetime | None  # aware, Beijing
    appid: str
    mch_id: str
    transaction_id: str
    out_trade_no: str
    openid: str
    trade_type: str
    trade_state: str  # SUCCESS / REFUND / REVOKED
    total_fee: int
    wechat_refund_id: str
    out_refund_no: str
    refund_fee: int
    refund_status: str
    fee: int
    raw: str


@dataclass(frozen=True)
class BillSummary:
    """The bill's own summary line (§14.6), in fen: WeChat's count and column sums."""

    trade_count: int
    paid_total: int
    refund_total: int
    fee_total: int


@dataclass(frozen=True)
class BillLineError:
    """A detail line that could not be read; the lines around it still are."""

    line_no: int
    reason: str
    raw: str


@dataclass
class BillTotals:
    """The sums of the lines read, to hold against the summary with :func:`check_summary`."""

    trade_count: int = 0
    paid_total: int = 0
    refund_total: int = 0
    fee_total: int = 0
    errors: int = 0

    def add(self, item: BillLine | BillLineError) -> None:
        if isinstance(item, BillLineError):
            self.errors += 1
            return
        self.trade_count += 1
        self.paid_total += item.total_fee
        self.refund_total += item.refund_fee
        self.fee_total += item.fee


def check_summary(lines_totals: BillTotals | BillSummary, summary: BillSummary) -> list[str]:
    """What differs between the lines and the summary, one sentence each; [] if nothing.

    WeChat does not define the summary (§14.6, unsure): flag a difference, do not abort.
    """
    differences = []
    for name in ("trade_count", "paid_total", "refund_total", "fee_total"):
        ours, theirs = getattr(lines_totals, name), getattr(summary, name)
        if ours != theirs:
            differences.append(f"{name}: the lines give {ours}, the summary says {theirs}")
    return differences


def iter_trade_bill(stream: BinaryIO) -> Iterator[BillLine | BillLineError | BillSummary]:
    """Yield each detail line in file order (a :class:`BillLine`, or a
    :class:`BillLineError` for a line that cannot be read), then exactly one
    :class:`BillSummary`. Raises :class:`BillFormatError` when the file as a whole is not a
    bill or stops before its summary (§14.11)."""
    lines = _text_lines(stream)
    header = _header(lines)
    summary_header: list[str] | None = None
    line_no = 0
    for _number, text in lines:
        if isinstance(text, BillLineError):
            line_no += 1
            yield BillLineError(line_no, text.reason, text.raw)
            continue
        if text.startswith(SUMMARY_MARK):
            summary_header = text.split(",")
            break
        line_no += 1
        yield _detail(line_no, text, header)
    if summary_header is None:
        raise BillFormatError("no summary: the bill is truncated")
    values = next(lines, None)
    if values is None or isinstance(values[1], BillLineError):
        raise BillFormatError("the summary header has no readable values line")
    summary = _summary(summary_header, values[1])
    extra = next(lines, None)
    if extra is not None:
        raise BillFormatError(f"file line {extra[0]}: text after the summary")
    yield summary


# --- reading ------------------------------------------------------------------------------

def _text_lines(stream: BinaryIO) -> Iterator[tuple[int, str | BillLineError]]:
    """(file line number, text) for each non-empty line, BOM and CR/LF removed; a line that
    is too long or not UTF-8 comes as a BillLineError (its line_no is filled in later)."""
    number = 0
    while True:
        chunk = stream.readline(MAX_LINE_BYTES + 1)
        if not chunk:
            return
        number += 1
        if number == 1 and chunk.startswith(BOM):
            chunk = chunk[len(BOM):]
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield number, BillLineError(0, f"longer than {MAX_LINE_BYTES} bytes",
                                        _shown(chunk))
            continue
        chunk = chunk.rstrip(b"\r\n")
        if not chunk.strip():
            continue  # §14.9: skip empty lines
        try:
            yield number, chunk.decode("utf-8")
        except UnicodeDecodeError:
            yield number, BillLineError(0, "not UTF-8", _shown(chunk))


def _shown(chunk: bytes) -> str:
    return chunk[:200].decode("utf-8", "replace")


def _header(lines: Iterator[tuple[int, str | BillLineError]]) -> dict[str, int]:
    first = next(lines, None)
    if first is None:
        raise BillFormatError("empty file: no header")
    text = first[1]
    if isinstance(text, BillLineError):
        raise BillFormatError(f"unreadable header: {text.reason}")
    if text.lstrip().startswith("<"):
        raise BillFormatError("this is an XML answer, not a bill")
    names = [name.strip() for name in text.split(",")]
    missing = [name for name in _REQUIRED if name not in names]
    if missing or not any(name in names for name in _TOTAL_COLUMNS):
        raise BillFormatError(f"not a trade bill header (missing {missing or 'an amount'})")
    return {name: index for index, name in enumerate(names)}


def _values(text: str) -> list[str]:
    """§14.11 step 4: one backtick before each value; a comma inside a value survives."""
    if not text.startswith("`"):
        raise ValueError("a data line must start with a backtick")
    return text[1:].split(",`")


def _detail(line_no: int, text: str, header: dict[str, int]) -> BillLine | BillLineError:
    try:
        values = _values(text)
        if len(values) != len(header):
            raise ValueError(f"{len(values)} values for {len(header)} columns")

        def get(*names: str) -> str:
            for name in names:
                if name in header:
                    return values[header[name]].strip()
            return ""

        state = get("交易状态")
        # A REFUND bill also has 退款申请时间, the better refund time (§14.5).
        when = (get("退款申请时间") if state == "REFUND" else "") or get("交易时间")
        return BillLine(
            line_no=line_no,
            trade_time=_time(when),
            appid=get("公众账号ID"),
            mch_id=get("商户号"),
            transaction_id=get("微信订单号"),
            out_trade_no=get("商户订单号"),
            openid=get("用户标识"),
            trade_type=get("交易类型"),
            trade_state=state,
            total_fee=_fen(get(*_TOTAL_COLUMNS)),
            wechat_refund_id=_id(get("微信退款单号")),
            out_refund_no=_id(get("商户退款单号")),
            refund_fee=_fen(get(*_REFUND_COLUMNS)),
            refund_status=get("退款状态"),
            fee=_fen(get("手续费"), exact=False),
            raw=text,
        )
    except ValueError as exc:
        return BillLineError(line_no, str(exc), text)


def _summary(names: list[str], text: str) -> BillSummary:
    try:
        values = _values(text)
        if len(values) != len(names):
            raise ValueError(f"{len(values)} values for {len(names)} columns")
        by_name = {name.strip(): value.strip() for name, value in zip(names, values, strict=True)}

        def get(*candidates: str) -> str:
            return next((by_name[n] for n in candidates if n in by_name), "")

        count = get(SUMMARY_MARK)
        if not count.isascii() or not count.isdigit():
            raise ValueError(f"{SUMMARY_MARK} is not a count")
        return BillSummary(
            trade_count=int(count),
            paid_total=_fen(get(*_SUMMARY_PAID)),
            refund_total=_fen(get(*_SUMMARY_REFUND)),
            fee_total=_fen(get("手续费总金额"), exact=False),
        )
    except ValueError as exc:
        raise BillFormatError(f"unreadable summary: {exc}") from None


def _id(value: str) -> str:
    return "" if value in _FILLER_IDS else value


def _time(value: str) -> datetime | None:
    if not value:
        return None
    if not _TIME_SHAPE.fullmatch(value):
        raise ValueError(f"time {value[:40]!r} is not yyyy-MM-dd HH:mm:ss")
    # The shape is checked above, so fromisoformat reads exactly these values (a third of
    # strptime's cost: the parser's largest share at 10^6 lines, docs/PERFORMANCE.md).
    return datetime.fromisoformat(value).replace(tzinfo=BEIJING)


def _fen(value: str, *, exact: bool = True) -> int:
    """Yuan text → integer fen with Decimal, never float (§14.9). An empty column is 0.

    Amounts must be whole fen; the fee (5 decimals, rounding undocumented, §14.4) is
    rounded half up to the fen instead of refusing the line.
    """
    if value == "":
        return 0
    if not _AMOUNT.fullmatch(value):
        raise ValueError(f"amount {value[:40]!r} is not a yuan amount")
    fen = Decimal(value) * 100
    if fen != fen.to_integral_value():
        if exact:
            raise ValueError(f"amount {value!r} is not a whole number of fen")
        fen = fen.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(fen)
