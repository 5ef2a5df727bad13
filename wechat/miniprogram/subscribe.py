"""Subscribe-message keyword values (docs/protocol/miniprogram-server-api.md §4.3). Pure functions.

A value that breaks its keyword's rule makes WeChat refuse the whole message (``47003``), so
values are made to fit before sending: free text is cut (``thing`` gets an ellipsis), and
values that cutting would falsify (numbers, amounts, phone numbers) raise ``ValueError``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

# A fixed offset is exact: China has not observed daylight saving time since 1991.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

KINDS = (
    "thing", "number", "letter", "symbol", "character_string", "time", "date", "amount",
    "phone_number", "car_number", "name", "phrase", "enum",
)
# Longest value per kind, in characters (§4.3); ``name`` depends on the script.
LIMITS = {
    "thing": 20, "number": 32, "letter": 32, "symbol": 5, "character_string": 32,
    "phone_number": 17, "car_number": 8, "phrase": 5,
}
AMOUNT_DIGITS = 10
ELLIPSIS = "…"

_KEY = re.compile(r"([a-z_]+?)([0-9]+)")
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_LETTERS = re.compile(r"[A-Za-z]*")
_PRINTABLE_ASCII = re.compile(r"[!-~]")  # digits, letters, symbols; no space
_HAN = re.compile(r"[\u4e00-\u9fff]*")
_PHONE = re.compile(r"[0-9+\-() ]*")
_AMOUNT = re.compile(r"[^\s0-9.]?([0-9]+)(?:\.([0-9]+))?元?")


def keyword_kind(key: str) -> str:
    """The kind of a template keyword: ``thing1`` → ``thing``, ``character_string12`` →
    ``character_string``. Raises ``ValueError`` for a key that is not a kind plus a number."""
    match = _KEY.fullmatch(key) if isinstance(key, str) else None
    if match is None or match.group(1) not in KINDS:
        raise ValueError(f"{key!r} is not a template keyword (a kind of {KINDS} and a number)")
    return match.group(1)


def subscribe_value(kind: str, value: object) -> str:
    """``value`` as the keyword ``kind`` accepts it.

    - ``thing``: whitespace runs become one space; over 20 characters, 19 and ``…``.
    - ``character_string``: printable ASCII only (no spaces), the first 32.
    - ``letter`` ≤ 32 letters, ``number`` ≤ 32 digits (int or decimal string),
      ``phone_number`` ≤ 17, ``car_number`` ≤ 8: longer or other characters raise.
    - ``symbol``: the first 5 characters; ``phrase``: Chinese only, the first 5;
      ``name``: the first 10 characters if any is not ASCII, else the first 20.
    - ``time``: an aware datetime → ``2026年1月2日 15:04`` (Beijing); ``date``: a date or aware
      datetime → ``2026年1月2日``; a 2-tuple of them → a range ``a ~ b``; a string is kept.
    - ``amount``: integer fen → ``¥12.34`` (at most 10 digits, not negative); a string must
      already have the shape (one symbol, ≤ 10 digits, optional ``元``).
    - ``enum``: kept (only WeChat knows the template's values).
    """
    if kind in ("time", "date"):
        return _when(kind, value)
    if kind == "amount":
        return _amount(value)
    if kind in ("number", "character_string") and type(value) is int:
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"a {kind} value must be a string, not {type(value).__name__}")
    text = _SPACE.sub(" ", value).strip()
    if kind == "thing":
        return text if len(text) <= LIMITS["thing"] else text[: LIMITS["thing"] - 1] + ELLIPSIS
    if kind == "character_string":
        return "".join(_PRINTABLE_ASCII.findall(text))[: LIMITS[kind]]
    if kind == "symbol":
        return text[: LIMITS[kind]]
    if kind == "phrase":
        if not _HAN.fullmatch(text):
            raise ValueError("a phrase is Chinese characters only")
        return text[: LIMITS[kind]]
    if kind == "name":
        return text[: 20 if text.isascii() else 10]
    if kind == "enum":
        return text
    if kind in ("number", "letter", "phone_number", "car_number"):
        return _checked(kind, text)
    raise ValueError(f"unknown keyword kind {kind!r}; one of {KINDS}")


def _checked(kind: str, text: str) -> str:
    shape = {"number": _NUMBER, "letter": _LETTERS, "phone_number": _PHONE}.get(kind)
    if shape is not None and not shape.fullmatch(text):
        raise ValueError(f"{text!r} is not a {kind}")
    if len(text) > LIMITS[kind]:
        raise ValueError(f"a {kind} has at most {LIMITS[kind]} characters (cutting would falsify)")
    return text


def _when(kind: str, value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, tuple) and len(value) == 2:
        return f"{_when(kind, value[0])} ~ {_when(kind, value[1])}"
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("a time needs an aware datetime (shown in Beijing time)")
        value = value.astimezone(BEIJING)
        day = f"{value.year}年{value.month}月{value.day}日"
        return day if kind == "date" else f"{day} {value:%H:%M}"
    if isinstance(value, date) and kind == "date":
        return f"{value.year}年{value.month}月{value.day}日"
    raise ValueError(f"a {kind} value is an aware datetime, a date, a pair of them or a string")


def _amount(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("an amount cannot be negative")
        text = f"¥{value // 100}.{value % 100:02d}"
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError("an amount is integer fen or a formatted string")
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not an amount (one currency symbol, digits, optional 元)")
    if len(match.group(1)) + len(match.group(2) or "") > AMOUNT_DIGITS:
        raise ValueError(f"an amount has at most {AMOUNT_DIGITS} digits")
    return text
