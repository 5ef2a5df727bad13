"""Statements in admin: the list, the raw file, and resolving mismatches (§10)."""

from datetime import date

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.urls import reverse

from payments.models import Statement, StatementLine
from tests.factories import get_ok, make_shopper, reload, staff_client

LINES = reverse("admin:payments_statementline_changelist")


def a_statement(**fields) -> Statement:
    statement = Statement(
        bill_date=date(2026, 11, 27),
        api_version="v2",
        status=Statement.Status.MISMATCHED,
        file_sha256="ab" * 32,
        paid_total=4500,
        mismatch_count=1,
        **fields,
    )
    statement.file.save("bill.csv", ContentFile(b"\xef\xbb\xbfbill"), save=False)
    statement.save()
    return statement


def a_line(statement, n=1, **fields) -> StatementLine:
    defaults = {"out_trade_no": f"T{n}", "mismatch": StatementLine.Mismatch.NOT_PAID_HERE}
    defaults.update(fields)
    return StatementLine.objects.create(statement=statement, line_no=n, **defaults)


def staff_with(*codenames):
    user = make_shopper(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return staff_client(user), user


def resolve(client, lines, note="checked with WeChat"):
    return client.post(
        LINES,
        {
            "action": "resolve_action",
            ACTION_CHECKBOX_NAME: [line.pk for line in lines],
            "apply": "1",
            "note": note,
        },
        follow=True,
    )


def test_the_statement_list_shows_yuan_and_links(boss_client):
    statement = a_statement()
    text = get_ok(boss_client, reverse("admin:payments_statement_changelist"))
    assert "¥45.00" in text
    assert f"?statement__id__exact={statement.pk}" in text
    file_url = reverse("admin:payments_statement_file", args=[statement.pk])
    assert file_url in text
    response = boss_client.get(file_url)
    assert b"".join(response.streaming_content) == b"\xef\xbb\xbfbill"


def test_the_raw_file_needs_view_permission(db):
    statement = a_statement()
    client, _ = staff_with()
    assert client.get(
        reverse("admin:payments_statement_file", args=[statement.pk])
    ).status_code in (302, 403, 404)


def test_lines_filter_open_mismatches_and_search(boss_client):
    statement = a_statement()
    a_line(statement, 1, out_trade_no="SOOPENLINE")
    a_line(statement, 2, out_trade_no="SOMATCHEDLINE", mismatch="")
    text = get_ok(boss_client, LINES + "?resolved=open")
    assert "SOOPENLINE" in text and "SOMATCHEDLINE" not in text
    text = get_ok(boss_client, LINES + "?q=SOMATCHEDLINE")
    assert "SOMATCHEDLINE" in text and "SOOPENLINE" not in text


def test_resolve_with_permission_asks_for_a_note_then_resolves_once(db):
    client, user = staff_with("view_statementline", "change_statementline")
    line = a_line(a_statement(), 1)

    page = client.post(LINES, {"action": "resolve_action", ACTION_CHECKBOX_NAME: [line.pk]})
    assert page.status_code == 200 and b'name="note"' in page.content
    assert resolve(client, [line], note="  ").status_code == 200
    assert reload(line).resolved_at is None

    assert "1 line(s) resolved" in resolve(client, [line]).content.decode()
    line = reload(line)
    assert (line.resolved_by, line.resolution_note) == (user, "checked with WeChat")
    resolved_at = line.resolved_at

    # The same form sent again: refused, the first resolution stands.
    text = resolve(client, [line], note="another note").content.decode()
    assert "Nothing resolved" in text
    assert reload(line).resolved_at == resolved_at
    assert reload(line).resolution_note == "checked with WeChat"


def test_a_stale_form_resolves_nothing(db):
    client, _ = staff_with("view_statementline", "change_statementline")
    statement = a_statement()
    first, second = a_line(statement, 1), a_line(statement, 2)
    resolve(client, [first], note="done elsewhere")

    text = resolve(client, [first, second]).content.decode()

    assert "Nothing resolved" in text
    assert reload(second).resolved_at is None


def test_resolve_without_permission_is_not_offered(db):
    client, _ = staff_with("view_statementline")
    line = a_line(a_statement(), 1)

    assert "resolve_action" not in get_ok(client, LINES)
    resolve(client, [line])

    assert reload(line).resolved_at is None


def test_the_dashboard_shows_the_latest_statement(boss_client):
    old = a_statement()
    a_line(old, 1)
    Statement.objects.create(
        bill_date=date(2026, 11, 28), api_version="v2", status=Statement.Status.EMPTY
    )
    text = get_ok(boss_client, "/admin/")
    assert 'id="latest-statement"' in text and "WeChat bill of 2026-11-28" in text
    assert "open mismatches · No bill for this day" in text
