"""reconcile_orders shows progress on stderr for long runs; its summary is unchanged."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import translation

from payments.management.commands import reconcile_orders

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("reconcile_orders", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_long_runs_report_progress_on_stderr(waiting_orders, monkeypatch):
    monkeypatch.setattr(reconcile_orders, "PROGRESS_EVERY", 2)

    out, err = run()

    assert err.splitlines() == ["reconcile_orders: 2/5 orders…", "reconcile_orders: 4/5 orders…"]
    assert out.splitlines() == [
        "reconcile_orders: 5 orders looked at",
        "reconcile_orders: 0 refunds looked at",
        "       5  waiting",
    ]
    for line in out.splitlines()[2:]:
        assert re.fullmatch(r"  +\d+  \S.*", line)


def test_the_summary_speaks_the_operators_language(waiting_orders):
    with translation.override("zh-hans"):
        out, _ = run()

    assert out.splitlines()[-1] == "       5  等待中"


def test_short_runs_and_quiet_runs_print_no_progress(waiting_orders, monkeypatch):
    assert run("--claim-seconds", "0") == (
        "reconcile_orders: 5 orders looked at\n"
        "reconcile_orders: 0 refunds looked at\n"
        "       5  waiting\n",
        "",  # fewer than 50 orders
    )
    monkeypatch.setattr(reconcile_orders, "PROGRESS_EVERY", 2)
    out, err = run("--verbosity", "0")
    assert "5 orders looked at" in out
    assert err == ""
