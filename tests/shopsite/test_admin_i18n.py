"""Admin in Chinese and English: LocaleMiddleware, LANGUAGE_CODE, the header's switch."""

import ast
import gettext
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation

from orders.models import Order
from payments.models import PaymentNotification

pytestmark = pytest.mark.django_db


def test_index_in_chinese_when_the_browser_asks_for_it(boss_client, paid):
    text = boss_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()

    for label in ("商店管理后台", "今日收入", "最近 7 天收入", "待处理订单", "最新微信通知"):
        assert label in text, label
    assert "订单已标记为已支付" in text  # the notification's outcome badge
    assert "订单" in text and "支付通知" in text  # app and model names


def test_english_stays_the_default(boss_client, paid):
    text = boss_client.get("/admin/").content.decode()

    assert "Paid today" in text
    assert "今日收入" not in text


def test_language_code_setting_is_the_default_for_browsers_that_name_none(
    boss_client, paid, settings
):
    settings.LANGUAGE_CODE = "zh-hans"

    assert "今日收入" in boss_client.get("/admin/").content.decode()


def test_the_header_switch_changes_the_language(boss_client, paid):
    page = boss_client.get("/admin/").content.decode()
    assert 'name="language" value="zh-hans"' in page

    response = boss_client.post("/admin/i18n/setlang/", {"language": "zh-hans", "next": "/admin/"})

    assert response.status_code == 302
    assert "今日收入" in boss_client.get("/admin/").content.decode()


def test_order_pages_and_choices_are_translated(boss_client, paid):
    zh = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}

    listing = boss_client.get("/admin/orders/order/", **zh).content.decode()
    page = boss_client.get(f"/admin/orders/order/{paid.pk}/change/", **zh).content.decode()

    assert "已支付" in listing and "总额" in listing
    assert "微信支付单号" in page and "支付时间" in page
    with translation.override("zh-hans"):
        assert str(Order.Status.UNPAID.label) == "未支付"
        assert str(PaymentNotification._meta.verbose_name) == "支付通知"


def _po_entries(text: str) -> list[tuple[str, str]]:
    """(msgid, first msgstr) pairs; PO strings are quoted like Python's."""
    entries = []
    for block in text.split("\n\n"):
        parts: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith(("msgid ", "msgid_plural ", "msgstr ", "msgstr[0] ")):
                key, _, line = line.partition(" ")
                parts[key] = ""
            if line.startswith('"') and key:
                parts[key] += ast.literal_eval(line)
        if parts.get("msgid"):
            entries.append((parts["msgid"], parts.get("msgstr", parts.get("msgstr[0]", ""))))
    return entries


def test_every_message_is_translated_and_compiled():
    po = Path(settings.LOCALE_PATHS[0]) / "zh_Hans/LC_MESSAGES/django.po"
    entries = _po_entries(po.read_text(encoding="utf-8"))
    with po.with_suffix(".mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)

    assert len(entries) > 150
    assert [msgid for msgid, msgstr in entries if not msgstr] == []
    # A .mo older than its .po: run manage.py compilemessages.
    assert [msgid for msgid, msgstr in entries if compiled.gettext(msgid) != msgstr] == []


def test_anonymous_login_page_renders_in_both_languages():
    client = Client()
    assert "Shop administration" in client.get("/admin/login/").content.decode()
    zh = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "商店管理后台" in zh


@pytest.mark.django_db
def test_the_api_answers_in_english_whatever_the_phones_language(api):
    response = api.post(
        "/payment/order", {"items": []}, format="json", HTTP_ACCEPT_LANGUAGE="zh-hans"
    )

    assert response.status_code == 400
    assert response.json()["detail"].isascii()
    assert "Content-Language" not in response
