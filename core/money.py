from decimal import Decimal


def yuan(fen: int | None) -> str:
    """Integer fen as a price a person reads: 12345 → ``¥123.45``. No floats involved."""
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def fen_from_yuan(amount: Decimal) -> int:
    """A yuan amount a person typed, as integer fen: ``Decimal("12.34")`` → 1234.

    Exact Decimal arithmetic, never float (0.29 * 100 == 28.999999999999996); an amount
    with more than 2 decimal places has no value in fen and is refused.
    """
    fen = amount * 100
    if not fen.is_finite() or fen != fen.to_integral_value():
        raise ValueError("an amount in yuan has at most 2 decimal places")
    return int(fen)


def yuan_decimal(fen: int) -> str:
    """12345 → ``"123.45"``: exact, for forms and spreadsheets (no ¥, no separators)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"
