"""Checks on text staff type that is later sent to WeChat inside XML."""

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
