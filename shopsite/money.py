def yuan(fen: int | None) -> str:
    """Integer fen as a price a person reads: 12345 → ``¥123.45``. No floats involved."""
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"
