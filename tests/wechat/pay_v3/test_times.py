# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from wechat.pay_v3 import BEIJING, format_bill_date, format_rfc3339, parse_rfc3339


def test_format_rfc3339_is_beijing_time_in_whole_seconds():
    moment = datetime(2025, 1, 1, 0, 30, 0, 999_999, tzinfo=UTC)
    assert format_rfc3339(moment) == "2025-01-01T08:30:00+08:00"


def test_format_rfc3339_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="aware"):
        format_rfc3339(datetime(2025, 1, 1, 8, 30))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2025-01-01T08:00:30+08:00", datetime(2025, 1, 1, 8, 0, 30, tzinfo=BEIJING)),
        ("2025-01-01T00:00:30Z", datetime(2025, 1, 1, 8, 0, 30, tzinfo=BEIJING)),
        ("2025-01-01t00:00:30z", datetime(2025, 1, 1, 8, 0, 30, tzinfo=BEIJING)),
        ("2025-01-01T08:00:30.5+08:00", datetime(2025, 1, 1, 8, 0, 30, 500_000, tzinfo=BEIJING)),
        (
            "2025-01-01T08:00:30.123456789+08:00",
            datetime(2025, 1, 1, 8, 0, 30, 123_456, tzinfo=BEIJING),
        ),
        ("2024-12-31T19:00:30-05:00", datetime(2025, 1, 1, 8, 0, 30, tzinfo=BEIJING)),
    ],
)
def test_parse_rfc3339_gives_aware_beijing_times(text, expected):
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2025-01-01T08:00:30",  # no offset
        "2025-01-01 08:00:30+08:00",
        "20250101T080030+0800",
        "2025-13-01T08:00:30+08:00",
        "2025-01-01T08:00:30.+08:00",
        "2025-01-01T08:00:30+08:00 ",
        "\uff12\uff10\uff12\uff15-01-01T08:00:30+08:00",  # full-width digits
        None,
        20250101,
    ],
)
def test_parse_rfc3339_refuses_other_shapes(text):
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_format_rfc3339_round_trips():
    moment = datetime(2025, 6, 30, 23, 59, 59, tzinfo=timezone(timedelta(hours=-3)))
    assert parse_rfc3339(format_rfc3339(moment)) == moment


def test_bill_date_is_a_calendar_day():
    assert format_bill_date(date(2025, 1, 1)) == "2025-01-01"
    with pytest.raises(ValueError, match="date"):
        format_bill_date(datetime(2025, 1, 1, tzinfo=BEIJING))
