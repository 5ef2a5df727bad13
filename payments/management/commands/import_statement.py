"""``python manage.py import_statement [--date YYYY-MM-DD]``: import WeChat's trade bill of one
Beijing day (default yesterday) and match it against our orders and refunds
(docs/INVARIANTS.md §10; payments/statements.py).

Safe to run again, from cron or by hand: the same file changes nothing, a day without a bill
is recorded once as empty. The bill comes through v2 or v3, as the day's orders were placed
(``payments.statements.statement_api_version``). Progress goes to stderr, the summary to
stdout. Exits non-zero when the import failed (WeChat unavailable or refusing, a truncated
file, a v3 file whose SHA1 is not the one WeChat stated): nothing was written then, and
running it again later is the remedy.
"""

from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError

from core.config import WeChatNotConfigured
from core.money import yuan
from core.times import shop_today
from payments.models import StatementLine
from payments.statements import statement_import, statement_mismatches
from wechat.bills import BillFormatError
from wechat.pay_v2 import WxPayError
from wechat.pay_v3 import WxPayV3Error


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--date {value!r} is not a date like 2026-11-27") from None


class Command(BaseCommand):
    help = (
        "Import WeChat Pay's trade bill of one day (default yesterday, Beijing time) and match it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--date",
            dest="day",
            default="",
            help="The Beijing day, YYYY-MM-DD (default yesterday).",
        )

    def handle(self, *args, day: str, verbosity: int, **options):
        bill_date = _day(day) if day else shop_today() - timedelta(days=1)
        if verbosity > 0:
            self.stderr.write(f"import_statement: downloading the bill of {bill_date}…")
        try:
            result = statement_import(bill_date=bill_date)
        except (WxPayError, WxPayV3Error, WeChatNotConfigured, BillFormatError) as exc:
            raise CommandError(f"import of {bill_date} failed: {exc}") from None
        statement = result.statement
        self.stdout.write(
            f"import_statement: {bill_date} {statement.api_version}: {result.outcome.label} "
            f"(statement {statement.pk}, {statement.get_status_display()})"
        )
        lines = statement.lines.count()
        self.stdout.write(
            f"  {lines} lines; bill: {statement.trade_count} trades, "
            f"paid {yuan(statement.paid_total)}, refunded {yuan(statement.refund_total)}, "
            f"fees {yuan(statement.fee_total)}"
        )
        labels = dict(StatementLine.Mismatch.choices)
        found = statement_mismatches(statement=statement)
        self.stdout.write(f"  {sum(found.values())} open mismatches")
        for kind, count in found.items():
            self.stdout.write(f"  {count:6d}  {labels.get(kind, kind)}")
