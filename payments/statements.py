"""WeChat's daily trade bill: download, keep, match against our books (docs/INVARIANTS.md §10).

``statement_import`` downloads one Beijing day's bill into a temporary file (streamed, never
whole in memory, SHA-256 computed while it is written), outside any transaction. Then, in
one transaction: the raw file is kept in Django's default storage, one ``StatementLine`` per
bill line is written and matched against orders and refunds (``COPY`` and one
``INSERT … SELECT`` a batch on PostgreSQL, payments/statement_copy.py; batched INSERTs and
set-based UPDATEs elsewhere, payments/statement_lines.py — never a query per line or a
Python loop over orders), so an import costs the same number of queries for 10 lines or
a million, batches aside.

The bill is asked through the API the day's orders used (``statement_api_version``): v2's
``downloadbill``, or v3's ``tradebill`` and the download of its ``download_url``, whose SHA1
WeChat states and the client checks (docs/protocol/wechat-pay-v3.md §9). The file is the
same in both (the merchant's, whichever API each order used), so a day has one statement.

Importing the same file again changes nothing (same day and hash, through either API); a
corrected file is a new statement and the previous one points at it; a day WeChat has no
bill for is an ``empty`` statement, recorded once. The facts on the file are in
docs/protocol/wechat-pay-v2.md §14 (a bare §n below is a section of it).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import islice
from time import perf_counter
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.money import yuan
from core.times import shop_timezone
from orders.models import Order, PayVersion
from payments.models import Statement, StatementLine
from payments.services import payment_client
from payments.statement_copy import lines_copy_and_match
from payments.statement_lines import BATCH_SIZE, PAID, lines_insert_and_match
from payments.v3client import v3_client
from wechat.bills import BillSummary
from wechat.pay_v2 import NoBill
from wechat.pay_v3 import NoStatement

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024

Mismatch = StatementLine.Mismatch


class StatementOutcome(models.TextChoices):
    IMPORTED = "imported", _("Imported")
    UNCHANGED = "unchanged", _("Already imported: the same file")
    REPLACED = "replaced", _("Imported: replaces an earlier bill of the day")
    EMPTY = "empty", _("No bill for this day")


@dataclass(frozen=True)
class StatementResult:
    statement: Statement
    created: bool
    outcome: StatementOutcome


class _HashingWriter:
    """The destination the client streams the bill into: the temporary file, hashed on the
    way (SHA-256 of exactly the bytes kept)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()

    def writable(self) -> bool:
        return True


def statement_import(*, bill_date: date) -> StatementResult:
    """Import one Beijing day's trade bill and match it (docs/INVARIANTS.md §10), through
    the API ``statement_api_version`` chooses.

    Raises ``WxPayError`` (v2, other than ``NoBill``) or ``WxPayV3Error`` (v3, other than
    ``NoStatement``: ``StatementCreating`` while the bill is made, ``BillIntegrityError``
    when the file is not the one WeChat's SHA1 vouches for) when WeChat refuses or is
    unavailable; nothing is written then, and running it again later is safe.
    """
    version = statement_api_version(bill_date)
    with tempfile.TemporaryFile() as tmp:
        writer = _HashingWriter(tmp)
        wechat_hash = ""
        # WeChat is called here, before any transaction: nothing is locked meanwhile.
        if version == Statement.ApiVersion.V3:
            client = v3_client()
            try:
                bill = client.trade_bill(bill_date=bill_date, tar_type="GZIP")
            except NoStatement:
                return _record_empty(bill_date, version)
            # Right away: the download_url expires within minutes. Compressed on the wire,
            # written uncompressed; a SHA1 other than hash_value raises, and the temporary
            # file with what was written goes with it (docs/protocol/wechat-pay-v3.md §9).
            client.download_bill(bill, writer)
            wechat_hash = bill.hash_value.strip().lower()
        else:
            try:
                payment_client().download_bill(bill_date=bill_date, destination=writer)
            except NoBill:
                return _record_empty(bill_date, version)
        return _record_bill(bill_date, version, tmp, writer.sha256.hexdigest(), wechat_hash)


def statement_api_version(bill_date: date) -> str:
    """The API to ask for ``bill_date``'s bill through: v3 when the shop is configured for
    it, or when any order paid or refunded that Beijing day was placed with v3 (a shop
    that went back to v2 still has v3's settings, docs/INVARIANTS.md §9); v2 otherwise.
    The bill is the same either way, so one is enough (one query)."""
    if settings.WECHAT_PAY_VERSION == PayVersion.V3:
        return Statement.ApiVersion.V3
    start, end = _beijing_day(bill_date)
    v3_that_day = Order.objects.filter(pay_version=PayVersion.V3).filter(
        Q(paid_at__gte=start, paid_at__lt=end)
        | Q(refunds__created_at__gte=start, refunds__created_at__lt=end)
        | Q(refunds__succeeded_at__gte=start, refunds__succeeded_at__lt=end)
    )
    return Statement.ApiVersion.V3 if v3_that_day.exists() else Statement.ApiVersion.V2


def statement_import_file(*, bill_date: date, file: BinaryIO) -> StatementResult:
    """Import a v2 bill file already at hand (seekable, binary) as ``statement_import`` does
    with the downloaded one: the same recording and matching, WeChat not called. The seam for
    the benchmark (bench/statements.py) and for a file fetched by other means."""
    sha256 = hashlib.sha256()
    file.seek(0)
    while chunk := file.read(_CHUNK):
        sha256.update(chunk)
    return _record_bill(bill_date, Statement.ApiVersion.V2, file, sha256.hexdigest())


def _record_empty(bill_date: date, version: str) -> StatementResult:
    # Through either API: the day's empty statement, once (the other API's included).
    existing = (
        Statement.objects.filter(bill_date=bill_date, file_sha256="", status=Statement.Status.EMPTY)
        .order_by("pk")
        .first()
    )
    if existing is not None:
        return StatementResult(existing, False, StatementOutcome.EMPTY)
    statement, created = Statement.objects.get_or_create(
        bill_date=bill_date,
        api_version=version,
        file_sha256="",
        defaults={"status": Statement.Status.EMPTY, "detail": str(_("WeChat has no bill."))},
    )
    return StatementResult(statement, created, StatementOutcome.EMPTY)


def _record_bill(
    bill_date: date, version: str, tmp: BinaryIO, sha256: str, wechat_hash: str = ""
) -> StatementResult:
    # A day has one bill, whichever API it came through (docs/protocol/wechat-pay-v3.md
    # §9.3): the same file is the same statement, another one replaces it.
    same = {"bill_date": bill_date}
    existing = Statement.objects.filter(**same, file_sha256=sha256).order_by("pk").first()
    if existing is not None:
        return StatementResult(existing, False, StatementOutcome.UNCHANGED)
    tmp.seek(0)
    statement = Statement(
        **same,
        api_version=version,
        file_sha256=sha256,
        wechat_hash=wechat_hash,
        status=Statement.Status.MATCHED,
    )
    laps: dict[str, float] = {}
    began = perf_counter()
    # Storage is no part of the transaction: a file whose row rolls back is an orphan,
    # never a row without its file.
    statement.file.save(f"{bill_date:%Y%m%d}-{version}-{sha256[:16]}.csv", File(tmp), save=False)
    laps["store"] = perf_counter() - began
    tmp.seek(0)
    try:
        with transaction.atomic():
            statement.save()
            load_and_match = (
                lines_copy_and_match
                if connection.vendor == "postgresql"
                else lines_insert_and_match
            )
            summary, last_line = load_and_match(statement, tmp, laps)
            began = perf_counter()
            lines = StatementLine.objects.filter(statement=statement)
            day = _beijing_day(bill_date)
            _add_paid_here_only(statement, lines, day, last_line)
            laps["paid_here_only"] = perf_counter() - began
            began = perf_counter()
            _summarise(statement, lines, day, last_line, summary)
            replaced = (
                Statement.objects.filter(**same)
                .exclude(pk=statement.pk)
                .exclude(status=Statement.Status.SUPERSEDED)
                .update(status=Statement.Status.SUPERSEDED, superseded_by=statement)
            )
            laps["summarise"] = perf_counter() - began
            began = perf_counter()
        laps["commit"] = perf_counter() - began
    except IntegrityError:
        # Another import of the same file committed first.
        statement.file.delete(save=False)
        existing = Statement.objects.filter(**same, file_sha256=sha256).first()
        if existing is None:
            raise
        return StatementResult(existing, False, StatementOutcome.UNCHANGED)
    outcome = StatementOutcome.REPLACED if replaced else StatementOutcome.IMPORTED
    # Where the time went: the benchmark reads ``laps``; an operator reads the sentence.
    logger.info(
        "statement %s of %s imported: %s lines (%s), %s",
        statement.pk,
        bill_date,
        last_line,
        statement.status,
        ", ".join(f"{name} {seconds:.2f} s" for name, seconds in laps.items()),
        extra={"statement_laps": laps, "statement_lines": last_line},
    )
    return StatementResult(statement, True, outcome)


def _beijing_day(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=shop_timezone())
    return start, datetime.combine(day + timedelta(days=1), time.min, tzinfo=shop_timezone())


def _add_paid_here_only(statement, lines, day, last_line: int) -> None:
    """Orders paid here that day with no payment line in the bill: one line each, after
    the bill's own, made from one query."""
    missing = (
        Order.objects.filter(paid_at__gte=day[0], paid_at__lt=day[1], transaction_id__isnull=False)
        .exclude(transaction_id="")
        .exclude(Exists(lines.filter(trade_state=PAID, order_id=OuterRef("pk"))))
        .annotate(recorded=Coalesce("paid_fee", "total_fee"))
        .order_by("paid_at", "pk")
        .values_list("pk", "out_trade_no", "transaction_id", "paid_at", "recorded")
    )
    extra = (
        StatementLine(
            statement=statement,
            line_no=last_line + n,
            trade_time=paid_at,
            out_trade_no=out_trade_no,
            transaction_id=transaction_id,
            order_id=pk,
            mismatch=Mismatch.NOT_PAID_AT_WECHAT,
            mismatch_detail=f"paid here ({recorded} fen); not in WeChat's bill",
        )
        for n, (pk, out_trade_no, transaction_id, paid_at, recorded) in enumerate(
            missing.iterator(chunk_size=BATCH_SIZE), start=1
        )
    )
    # In batches: a day our books have and the bill lacks costs no memory by its size.
    while batch := list(islice(extra, BATCH_SIZE)):
        StatementLine.objects.bulk_create(batch)


def _summarise(statement, lines, day, last_line: int, summary: BillSummary) -> None:
    bill = lines.filter(line_no__lte=last_line).aggregate(
        count=Count("pk"),
        # As WeChat sums them (§14.6): every detail line, refund rows holding 0.
        paid=Coalesce(Sum("total_fee"), 0),
        refunded=Coalesce(Sum("refund_fee"), 0),
        fee=Coalesce(Sum("fee"), 0),
        mismatches=Count("pk", filter=~Q(mismatch="")),
    )
    mismatches = bill["mismatches"] + lines.filter(line_no__gt=last_line).count()
    books = (
        Order.objects.filter(paid_at__gte=day[0], paid_at__lt=day[1], transaction_id__isnull=False)
        .exclude(transaction_id="")
        .aggregate(count=Count("pk"), paid=Coalesce(Sum(Coalesce("paid_fee", "total_fee")), 0))
    )
    differs = [
        name
        for name, ours, theirs in (
            ("trades", bill["count"], summary.trade_count),
            ("paid", bill["paid"], summary.paid_total),
            ("refunded", bill["refunded"], summary.refund_total),
        )
        if ours != theirs
    ]
    detail = [
        f"Bill summary: {summary.trade_count} trades, paid {yuan(summary.paid_total)}, "
        f"refunded {yuan(summary.refund_total)}, fees {yuan(summary.fee_total)}.",
        f"Lines add up to: {bill['count']} lines, paid {yuan(bill['paid'])}, "
        f"refunded {yuan(bill['refunded'])}, fees {yuan(bill['fee'])}.",
        f"Our books: {books['count']} payments that day, {yuan(books['paid'])}.",
    ]
    if differs:
        detail.append("The summary does not match its lines: " + ", ".join(differs) + ".")
    statement.trade_count = summary.trade_count
    statement.paid_total = summary.paid_total
    statement.refund_total = summary.refund_total
    statement.fee_total = summary.fee_total
    statement.mismatch_count = mismatches
    statement.status = (
        Statement.Status.MISMATCHED if mismatches or differs else Statement.Status.MATCHED
    )
    statement.detail = "\n".join(detail)
    statement.save(
        update_fields=[
            "trade_count",
            "paid_total",
            "refund_total",
            "fee_total",
            "mismatch_count",
            "status",
            "detail",
        ]
    )


def statement_mismatches(*, statement: Statement) -> dict[str, int]:
    """Open mismatching lines of a statement by kind (one query)."""
    rows = (
        StatementLine.objects.filter(statement=statement, resolved_at__isnull=True)
        .exclude(mismatch="")
        .values("mismatch")
        .annotate(n=Count("pk"))
        .order_by("mismatch")
    )
    return {row["mismatch"]: row["n"] for row in rows}


class LinesAlreadyResolved(Exception):
    """Some of the lines were resolved meanwhile (a stale or resubmitted form): nothing was
    changed, so a line is never resolved twice or with two notes."""

    def __init__(self, line_nos: list[int]):
        super().__init__(f"already resolved: {line_nos}")
        self.line_nos = line_nos


def statement_lines_resolve(*, line_ids: list[int], user, note: str) -> int:
    """Mark open mismatching lines resolved by ``user`` with ``note``; all or none.

    Raises ``LinesAlreadyResolved`` when any of them is resolved already. Returns how many
    were resolved.
    """
    if not note.strip():
        raise ValueError("a resolution note is required")
    with transaction.atomic():
        lines = StatementLine.objects.select_for_update().filter(pk__in=line_ids)
        done = sorted(lines.filter(resolved_at__isnull=False).values_list("line_no", flat=True))
        if done:
            raise LinesAlreadyResolved(done)
        return lines.exclude(mismatch="").update(
            resolved_at=timezone.now(), resolved_by=user, resolution_note=note.strip()
        )


def statement_latest() -> Statement | None:
    """The latest bill still in force, with ``open_mismatches`` (one query: the dashboard)."""
    open_line = ~Q(lines__mismatch="") & Q(lines__resolved_at__isnull=True)
    return (
        Statement.objects.exclude(status=Statement.Status.SUPERSEDED)
        .annotate(open_mismatches=Count("lines", filter=open_line))
        .order_by("-bill_date", "-pk")
        .first()
    )
