# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from wechat.pay_v2.times import BEIJING, format_wx_time, parse_wx_datetime, parse_wx_time


def test_format_converts_to_beijing_time():
    # §10: London 2014-11-11 00:00:00 (GMT in November) -> 20141111080000.
    london = datetime(2014, 11, 11, 0, 0, 0, tzinfo=ZoneInfo("Europe/London"))
    assert format_wx_time(london) == "20141111080000"


def test_format_handles_day_rollover_from_utc():
    assert format_wx_time(datetime(2024, 12, 31, 20, 30, 5, tzinfo=UTC)) == "20250101043005"


def test_format_refuses_naive_datetime():
    with pytest.raises(ValueError, match="aware"):
        format_wx_time(datetime(2014, 11, 11))


def test_parse_returns_aware_beijing_time():
    parsed = parse_wx_time("20141111080000")
    assert parsed.utcoffset() == timedelta(hours=8)
    assert parsed.tzinfo is BEIJING
    assert parsed == datetime(2014, 11, 11, 0, 0, 0, tzinfo=UTC)


def test_format_then_parse_round_trips():
    moment = datetime(2023, 6, 1, 12, 34, 56, tzinfo=UTC)
    assert parse_wx_time(format_wx_time(moment)) == moment


@pytest.mark.parametrize(
    "value",
    [
        "",
        "2014111108000",
        "201411110800000",
        " 20141111080000",
        "2014-11-11 08:00:00",
        "20141311080000",
        "20140230080000",
        "20141111250000",
        "".join(chr(0xFF10 + int(digit)) for digit in "20141111080000"),  # full-width
        None,
        20141111080000,
    ],
)
def test_parse_refuses_anything_but_14_digit_times(value):
    with pytest.raises(ValueError):
        parse_wx_time(value)


def test_parse_datetime_reads_refund_success_time():
    parsed = parse_wx_datetime("2020-01-04 18:34:24")
    assert parsed == datetime(2020, 1, 4, 10, 34, 24, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    "value",
    ["", "20200104183424", "2020-1-4 18:34:24", "2020-01-04T18:34:24", "2020-02-30 00:00:00"],
)
def test_parse_datetime_refuses_other_shapes(value):
    with pytest.raises(ValueError):
        parse_wx_datetime(value)
