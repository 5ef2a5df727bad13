"""Subscribe-message values made to fit their keyword's rule.

A bare §n in this file is a section of docs/protocol/miniprogram-server-api.md.
"""

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wechat.miniprogram import keyword_kind, subscribe_value

NOON_BEIJING = datetime(2026, 1, 2, 7, 4, tzinfo=UTC)  # 15:04 in Beijing


@pytest.mark.parametrize(
    ("key", "kind"),
    [("thing1", "thing"), ("character_string12", "character_string"), ("amount3", "amount"),
     ("phone_number4", "phone_number"), ("time10", "time"), ("phrase2", "phrase")],
)
def test_keyword_kind_is_the_key_without_its_number(key, kind):
    assert keyword_kind(key) == kind


@pytest.mark.parametrize("key", ["thing", "1thing", "things1", "Thing1", "thing_1x", "", None])
def test_keyword_kind_refuses_what_is_not_a_keyword(key):
    with pytest.raises(ValueError):
        keyword_kind(key)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x" * 20, "x" * 20),  # exactly the limit: kept
        ("x" * 21, "x" * 19 + "…"),  # one over: 19 and an ellipsis, 20 in all
        ("乌龙茶" * 7, "乌龙茶" * 6 + "乌…"),  # characters, not bytes
        ("  two\n\tlines  ", "two lines"),
    ],
)
def test_thing_is_cut_to_20_characters_with_an_ellipsis(value, expected):
    assert subscribe_value("thing", value) == expected


@given(st.text())
def test_thing_always_fits(value):
    assert len(subscribe_value("thing", value)) <= 20


@pytest.mark.parametrize(
    ("value", "expected"),
    [("T" + "1" * 31, "T" + "1" * 31), ("T" + "1" * 32, "T" + "1" * 31),
     ("T2025 01-02/订单", "T202501-02/"), (20250101000001, "20250101000001")],
)
def test_character_string_keeps_32_printable_ascii_characters(value, expected):
    assert subscribe_value("character_string", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("已发货", "已发货"), ("已经发货", "已经发货"), ("等待卖家发货", "等待卖家发")],
)
def test_phrase_is_cut_to_5_chinese_characters(value, expected):
    assert subscribe_value("phrase", value) == expected


@pytest.mark.parametrize("value", ["shipped", "已发货!", "已 发货x"])
def test_phrase_refuses_what_is_not_chinese(value):
    with pytest.raises(ValueError):
        subscribe_value("phrase", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(10200, "¥102.00"), (1, "¥0.01"), (0, "¥0.00"), (99_999_999_99, "¥99999999.99"),
     ("¥102.00", "¥102.00"), ("102元", "102元"), ("$5", "$5")],
)
def test_amount_is_formatted_from_fen(value, expected):
    assert subscribe_value("amount", value) == expected


@pytest.mark.parametrize("value", [100_000_000_00, -1, True, 1.5, "102.00 yuan", "¥¥1", "¥"])
def test_amount_that_does_not_fit_raises_rather_than_lies(value):
    with pytest.raises(ValueError):
        subscribe_value("amount", value)


def test_time_is_24_hour_beijing_time():
    assert subscribe_value("time", NOON_BEIJING) == "2026年1月2日 15:04"
    assert subscribe_value("time", datetime(2026, 1, 1, 16, 30, tzinfo=UTC)) == "2026年1月2日 00:30"


def test_time_range_is_joined_with_a_tilde():
    end = datetime(2026, 1, 3, 7, 4, tzinfo=UTC)
    assert subscribe_value("time", (NOON_BEIJING, end)) == "2026年1月2日 15:04 ~ 2026年1月3日 15:04"


def test_date_takes_dates_and_aware_datetimes():
    assert subscribe_value("date", date(2026, 1, 2)) == "2026年1月2日"
    assert subscribe_value("date", datetime(2026, 1, 1, 16, 30, tzinfo=UTC)) == "2026年1月2日"
    assert subscribe_value("date", " 2026年1月2日 ") == "2026年1月2日"


@pytest.mark.parametrize(("kind", "value"), [("time", datetime(2026, 1, 2, 15, 4)),
                                             ("time", date(2026, 1, 2)), ("date", 20260102)])
def test_naive_or_wrong_times_raise(kind, value):
    with pytest.raises(ValueError):
        subscribe_value(kind, value)


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [("number", 12, "12"), ("number", "3.50", "3.50"), ("number", "1" * 32, "1" * 32),
     ("letter", "abcXYZ", "abcXYZ"), ("symbol", "+-*/%&", "+-*/%"),
     ("phone_number", "+86 189-1234-5678", "+86 189-1234-5678"),
     ("car_number", "粤A12345", "粤A12345"),
     ("name", "Alexander Hamilton Burr Jr", "Alexander Hamilton B"),
     ("name", "欧阳娜娜娜娜娜娜娜娜娜", "欧阳娜娜娜娜娜娜娜娜"), ("enum", "待发货", "待发货")],
)
def test_other_kinds(kind, value, expected):
    assert subscribe_value(kind, value) == expected


@pytest.mark.parametrize(
    ("kind", "value"),
    [("number", "1" * 33), ("number", "12a"), ("letter", "abc1"), ("letter", "a" * 33),
     ("phone_number", "1" * 18), ("phone_number", "call me"), ("car_number", "粤A1234567"),
     ("thing", None), ("thing", 12), ("unknown", "x")],
)
def test_values_that_cutting_would_falsify_raise(kind, value):
    with pytest.raises(ValueError):
        subscribe_value(kind, value)
