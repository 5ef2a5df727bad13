# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.
"""Rules of times.py a mutation run found unpinned: Beijing time whatever the server's own
zone, a zone that gives no offset counts as none, and the messages a caller shows (the client
wraps them in WxPayV3RequestInvalid)."""

import time
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.wechat.zones import NoOffset
from wechat.pay_v3 import BEIJING, format_bill_date, format_rfc3339, parse_rfc3339


@pytest.mark.usefixtures("server_in_new_york")
def test_format_rfc3339_is_beijing_time_whatever_the_servers_zone():
    assert time.localtime(0).tm_gmtoff == -5 * 3600
    assert format_rfc3339(datetime(2025, 1, 1, 0, 30, tzinfo=UTC)) == "2025-01-01T08:30:00+08:00"


def test_format_rfc3339_refuses_a_zone_without_an_offset():
    with pytest.raises(ValueError) as caught:
        format_rfc3339(datetime(2025, 1, 1, 8, 30, tzinfo=NoOffset()))
    assert str(caught.value) == "format_rfc3339 needs an aware datetime"
    with pytest.raises(ValueError, match=r"^format_rfc3339 needs an aware datetime$"):
        format_rfc3339(datetime(2025, 1, 1, 8, 30))


def test_format_rfc3339_keeps_the_instant_of_any_offset():
    moment = datetime(2025, 1, 1, 19, 30, tzinfo=BEIJING) + timedelta(hours=1)
    assert format_rfc3339(moment.astimezone(UTC)) == "2025-01-01T20:30:00+08:00"


def test_a_bill_date_that_is_a_datetime_is_refused_with_the_reason():
    with pytest.raises(ValueError) as caught:
        format_bill_date(datetime(2025, 1, 1, tzinfo=BEIJING))
    assert str(caught.value) == (
        "bill_date must be a date (a Beijing calendar day), not a datetime"
    )
    assert format_bill_date(date(2025, 1, 31)) == "2025-01-31"


@pytest.mark.parametrize(
    "text, micro",
    [("2025-01-01T00:00:30.5Z", 500_000), ("2025-01-01t00:00:30.1234567z", 123_456)],
)
def test_a_fraction_before_z_is_read(text, micro):
    assert parse_rfc3339(text) == datetime(2025, 1, 1, 8, 0, 30, micro, tzinfo=BEIJING)


def test_a_time_that_is_not_rfc_3339_is_refused_with_the_value():
    with pytest.raises(ValueError) as caught:
        parse_rfc3339("2025-01-01")
    assert str(caught.value) == "not an RFC 3339 time with offset: '2025-01-01'"


def test_a_parsed_time_is_in_beijing_time_whatever_its_offset():
    parsed = parse_rfc3339("2025-01-01T00:30:00.123456789Z")

    assert parsed.utcoffset() == timedelta(hours=8)
    assert (parsed.hour, parsed.microsecond) == (8, 123456)  # past microseconds: dropped


def test_a_time_of_the_right_shape_but_no_such_day_is_refused_with_the_value():
    with pytest.raises(ValueError) as caught:
        parse_rfc3339("2025-13-01T08:30:00+08:00")

    assert str(caught.value) == "not an RFC 3339 time with offset: '2025-13-01T08:30:00+08:00'"


@pytest.mark.usefixtures("server_in_new_york")
def test_a_parsed_time_is_in_beijing_time_whatever_the_servers_zone():
    parsed = parse_rfc3339("2025-01-01T00:30:00Z")
    assert parsed.utcoffset() == timedelta(hours=8)
    assert (parsed.day, parsed.hour) == (1, 8)
