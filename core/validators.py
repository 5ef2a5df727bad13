"""Checks on text people type (staff in admin, shoppers through the API) that is later
sent to WeChat inside XML, printed on a label or exported."""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

# Characters XML 1.0 cannot carry at all, not even in CDATA (wechat.pay_v2.xml refuses
# them): a product name or refund reason with one could never be sent to WeChat. They
# arrive by pasting, e.g. an ESC from a terminal; tab, newline and CR are fine.
XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def refuse_control_characters(text: str) -> str:
    if XML_UNSAFE.search(text):
        raise ValidationError(
            _(
                "Remove the control characters (invisible characters, often pasted from "
                "elsewhere): WeChat cannot carry them."
            ),
            code="control_characters",
        )
    return text


# Text a shopper typed has no use for any control character: besides XML_UNSAFE, DEL and the
# C1 controls, the Unicode line and paragraph separators, and the bidirectional overrides
# that make a name read backwards on a label or an admin page.
TEXT_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff\ufffe\uffff]"
)
# One line (a name, a phone number, a part of an address) has no tab or line break either:
# they would split a shipping label or an exported CSV row.
LINE_BREAKS = re.compile("[\t\n\r]")


def refuse_control_characters_in_text(text: str) -> str:
    """For what a shopper types (a remark): tabs and line breaks are fine, no other control
    character. The message never repeats the value (it may be personal data)."""
    if TEXT_UNSAFE.search(text):
        raise ValidationError(
            _("Remove the control characters (invisible characters, often pasted from elsewhere)."),
            code="control_characters",
        )
    return text


def refuse_control_characters_in_line(text: str) -> str:
    """For one line a shopper types (a name, a phone number, a part of an address): no
    control character, no tab or line break either."""
    if LINE_BREAKS.search(text):
        raise ValidationError(
            _("Keep it on one line: no tabs or line breaks."), code="control_characters"
        )
    return refuse_control_characters_in_text(text)
