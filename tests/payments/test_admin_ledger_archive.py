"""The notify ledger's archives in admin: visible to who may view them, changed by nobody
(only ``archive_notifications`` writes them)."""

from datetime import datetime

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import User
from payments.models import LedgerArchive
from wechat.pay_v2 import BEIJING

pytestmark = pytest.mark.django_db

ARCHIVES = "/admin/payments/ledgerarchive/"
SHA256 = "3a" * 32


@pytest.fixture
def archive() -> LedgerArchive:
    return LedgerArchive.objects.create(
        file="ledger/notifications-000001-000420.jsonl.gz",
        sha256=SHA256,
        rows=420,
        first_id=1,
        last_id=420,
        first_received_at=datetime(2025, 1, 2, 9, 0, tzinfo=BEIJING),
        last_received_at=datetime(2025, 1, 30, 18, 0, tzinfo=BEIJING),
        cut_off=datetime(2025, 2, 1, tzinfo=BEIJING),
    )


def clerk_with(*codenames: str) -> Client:
    name = "clerk-" + "-".join(codenames)
    clerk = User.objects.create_user(name, password="a-long-test-password", is_staff=True)
    for codename in codenames:
        clerk.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(clerk)
    return client


def test_the_list_and_the_page_show_where_the_rows_went(boss_client, archive):
    listing = boss_client.get(ARCHIVES).content.decode()
    page = boss_client.get(f"{ARCHIVES}{archive.pk}/change/").content.decode()

    assert "notifications-000001-000420.jsonl.gz" in listing
    assert "420" in listing
    assert SHA256 in page


def test_found_by_its_hash(boss_client, archive):
    assert "000420" in boss_client.get(ARCHIVES, {"q": SHA256}).content.decode()
    assert "000420" not in boss_client.get(ARCHIVES, {"q": "4b" * 32}).content.decode()


def test_nobody_adds_changes_or_deletes_one_not_even_a_superuser(boss_client, archive):
    assert boss_client.get(f"{ARCHIVES}add/").status_code == 403
    assert boss_client.post(f"{ARCHIVES}{archive.pk}/change/", {"rows": "1"}).status_code == 403
    assert boss_client.post(f"{ARCHIVES}{archive.pk}/delete/", {"post": "yes"}).status_code == 403
    archive.refresh_from_db()
    assert archive.rows == 420


def test_seen_only_with_the_view_permission(archive):
    assert clerk_with().get(ARCHIVES).status_code == 403
    assert clerk_with("view_ledgerarchive").get(ARCHIVES).status_code == 200


def test_named_in_chinese(boss_client, archive):
    page = boss_client.get(ARCHIVES, headers={"accept-language": "zh-hans"}).content.decode()

    assert "通知记录归档" in page
