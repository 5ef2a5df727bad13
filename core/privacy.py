"""Personal data as staff and files may see it: a shopper's phone number masked.

Phone numbers and addresses are never logged (docs/INVARIANTS.md §8, README); where staff
who only look (view permission) or an exported file show one, it is masked.
"""


def mask_phone(phone: str | None) -> str:
    """``13812345678`` → ``138****5678``: the last four digits stay, as WeChat masks a
    receiver's number (docs/protocol/miniprogram-server-api.md §2.4); shorter numbers keep
    their last four characters only, four or fewer none."""
    text = "".join(str(phone or "").split())
    if not text:
        return ""
    if len(text) <= 4:
        return "****"
    if len(text) < 11:
        return "****" + text[-4:]
    return text[:3] + "****" + text[-4:]
