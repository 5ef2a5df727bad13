"""``python manage.py ship_orders <file.csv>``: ship the orders of the warehouse's file
(docs/INVARIANTS.md §7).

The file's header is ``out_trade_no,logistics_type,express_company,tracking_no``; each line
goes through the same service as admin's "Ship…" (``orders.fulfilment``). One output line
per file line: ``<out_trade_no>: shipped``, ``already shipped`` or why not; then a summary.
Running the same file again ships nothing twice (every line ``already shipped``, exit 0).
Any line not shipped makes the exit status non-zero, after every other line was tried.
"""

from collections import Counter

from django.core.management.base import BaseCommand, CommandError, no_translations

from orders.fulfilment import CSV_HEADER, CsvLineStatus, CsvRefused, shipments_from_csv


class Command(BaseCommand):
    help = (
        "Ship orders from the warehouse's CSV file (header: "
        f"{','.join(CSV_HEADER)}); exits non-zero if any line was not shipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV file (UTF-8, with or without a BOM).")

    # The contract's words ("shipped", "already shipped") whatever LANGUAGE_CODE is.
    @no_translations
    def handle(self, *args, file: str, **options):
        try:
            with open(file, "rb") as stream:
                results = shipments_from_csv(stream)
        except OSError as exc:
            raise CommandError(f"{file}: cannot be read ({exc.strerror or exc})") from None
        except CsvRefused as exc:
            raise CommandError(f"{file}: {exc} Nothing was shipped.") from None
        for result in results:
            self.stdout.write(f"{result.label}: {result.text}")
        counts = Counter(result.status for result in results)
        self.stdout.write(
            f"ship_orders: {len(results)} lines: {counts[CsvLineStatus.SHIPPED]} shipped, "
            f"{counts[CsvLineStatus.ALREADY_SHIPPED]} already shipped, "
            f"{counts[CsvLineStatus.FAILED]} not shipped"
        )
        failed = counts[CsvLineStatus.FAILED]
        if failed:
            lines = "line" if failed == 1 else "lines"
            raise CommandError(f"{failed} {lines} not shipped; every other line was tried.")
