"""``python manage.py archive_notifications --before YYYY-MM-DD [--dry-run] [--batch-size N]``:
move settled notify ledger rows received before that Beijing day into compressed, hashed
files in the default storage (payments/archive.py; the policy is in docs/OPERATIONS.md
"The notify ledger"). ``--verify`` checks every archive file against its recorded hash.

Safe to run again and to interrupt: a batch is archived whole or not at all, and a rerun
takes up where the last one stopped. Progress goes to stderr, the summary to stdout. Exits
non-zero when a file could not be written or read back (nothing of that batch was deleted)
or when ``--verify`` finds a file missing or changed.
"""

from datetime import date, datetime, time, timedelta

from django.core.management.base import BaseCommand, CommandError

from core.times import shop_timezone, shop_today
from payments.archive import ArchiveError, archive_verify, notifications_archive
from payments.models import LedgerArchive

# WeChat serves a day's bill for 3 months (docs/protocol/wechat-pay-v2.md §14.1): while a
# bill can still be fetched and its mismatches looked into, the notifies stay in admin.
MIN_AGE_DAYS = 93


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--before {value!r} is not a date like 2025-06-01") from None


class Command(BaseCommand):
    help = "Archive settled notify ledger rows received before a day (Beijing time)."

    def add_arguments(self, parser):
        parser.add_argument("--before", default="", help="YYYY-MM-DD, Beijing time.")
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")
        parser.add_argument("--batch-size", type=int, default=5000, help="Groups per batch.")
        parser.add_argument(
            "--verify", action="store_true", help="Check every archive file, archive nothing."
        )

    def handle(self, *args, before: str, dry_run: bool, batch_size: int, verify: bool, **opts):
        if verify:
            return self._verify()
        if not before:
            raise CommandError("--before YYYY-MM-DD is required")
        day = _day(before)
        if day > shop_today() - timedelta(days=MIN_AGE_DAYS):
            raise CommandError(
                f"--before {day} is too recent: the ledger keeps at least {MIN_AGE_DAYS} days"
            )
        cut_off = datetime.combine(day, time.min, tzinfo=shop_timezone())
        quiet = opts["verbosity"] == 0
        try:
            report = notifications_archive(
                before=cut_off,
                batch_size=max(1, batch_size),
                dry_run=dry_run,
                progress=None if quiet else lambda line: self.stderr.write(f"  {line}"),
            )
        except (ArchiveError, OSError) as exc:
            raise CommandError(f"archive stopped, this batch left in the database: {exc}") from exc
        verb = "would be archived" if dry_run else "archived"
        files = "" if dry_run else f" into {len(report.archives)} files"
        self.stdout.write(
            f"archive_notifications: received before {cut_off:%Y-%m-%d %H:%M %Z}: "
            f"{report.rows} rows {verb}{files}"
        )
        for reason, rows in sorted(report.kept.items()):
            self.stdout.write(f"  {rows:8d} kept: {reason}")

    def _verify(self) -> None:
        problems = [p for p in map(archive_verify, LedgerArchive.objects.order_by("pk")) if p]
        for problem in problems:
            self.stderr.write(f"  {problem}")
        if problems:
            raise CommandError(f"{len(problems)} archive files failed: {problems[0]}")
        self.stdout.write(f"archives verified: {LedgerArchive.objects.count()}")
