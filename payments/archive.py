"""Archiving the notify ledger: settled rows older than a cut-off move out of the database
into compressed, hashed files in Django's storage (docs/OPERATIONS.md "The notify ledger").

The ledger only grows (one row per notify, duplicates and refunds included), and it is the
evidence of every payment: nothing leaves it unless it is kept elsewhere, verified. A
**group** is a row WeChat sent and the reprocesses made of it in admin (``reprocess_of``
always names the first row); groups move whole. A group is **settled**, and may move, when
every row in it was received before the cut-off, its newest row has a final outcome (not
``received``, not ``error``), and none of its orders is flagged or has a refund still open
at WeChat, nor is any of its refunds open.

Per batch of groups, in one transaction: lock the rows, decide, write the file (gzip'd
JSON lines in Django's serialization format, so ``manage.py loaddata`` reads it back), read
it back from storage and compare it with the rows, record a ``LedgerArchive`` with its
SHA-256, delete the rows. A failure anywhere rolls the batch back; the file it may leave
is named by its content, so the next run finds the same file and reuses it. Running it
again archives what became settled since, and nothing twice.
"""

import gzip
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max, Q

from orders.models import Order
from payments.models import REFUND_OPEN, LedgerArchive, PaymentNotification, Refund

Outcome = PaymentNotification.Outcome
NOT_FINAL = (Outcome.RECEIVED, Outcome.ERROR)
FOLDER = "ledger"
MODEL_LABEL = "payments.paymentnotification"


class ArchiveError(Exception):
    """The file in storage is not what was written: nothing was deleted."""


class KeptBecause:
    """Why a settled-looking group older than the cut-off stays in the database."""

    NOT_FINAL = "not processed to the end (received or error, not reprocessed since)"
    FLAGGED = "order flagged for staff"
    REFUND_OPEN = "refund still open at WeChat"
    RECENT_REPROCESS = "reprocessed after the cut-off"


@dataclass
class ArchiveReport:
    dry_run: bool
    rows: int = 0  # archived, or that would be
    archives: list[LedgerArchive] = field(default_factory=list)
    kept: Counter = field(default_factory=Counter)  # reason -> rows


def notifications_archive(
    *,
    before: datetime,
    batch_size: int = 5000,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ArchiveReport:
    """Archive every settled group received before ``before``, ``batch_size`` groups at a
    time, oldest first."""
    report = ArchiveReport(dry_run=dry_run)
    older = PaymentNotification.objects.filter(received_at__lt=before)
    # Ids follow time: the batches walk the primary key up to the last old row, and stop
    # there instead of reading the rest of the ledger to find that no old row is left.
    last = older.aggregate(last=Max("pk"))["last"] or 0
    after = 0
    while True:
        roots = list(
            older.filter(reprocess_of__isnull=True, pk__gt=after, pk__lte=last)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not roots:
            return report
        after = roots[-1]
        with transaction.atomic():
            archived = _batch(roots, before, dry_run, report)
        if progress and archived:
            progress(archived)


def _batch(roots: list[int], before: datetime, dry_run: bool, report: ArchiveReport) -> str:
    rows = PaymentNotification.objects.filter(Q(pk__in=roots) | Q(reprocess_of__in=roots))
    if not dry_run:
        rows = rows.select_for_update()
    groups: dict[int, list[PaymentNotification]] = {}
    for row in rows.order_by("pk"):
        groups.setdefault(row.reprocess_of_id or row.pk, []).append(row)
    settled = []
    for group, reason in zip(groups.values(), _reasons(groups.values(), before), strict=True):
        if reason:
            report.kept[reason] += len(group)
        else:
            settled += group
    if not settled:
        return ""
    # Groups interleave (a reprocess comes long after its first row): the file, its name
    # and its recorded id range go by id.
    settled.sort(key=lambda row: row.pk)
    report.rows += len(settled)
    if dry_run:
        return f"{len(settled)} rows would be archived (#{settled[0].pk}…#{settled[-1].pk})"
    kept = _archive(settled, before)
    report.archives.append(kept)
    return f"{kept.rows} rows (#{kept.first_id}…#{kept.last_id}) -> {kept.file.name}"


def _reasons(groups, before: datetime) -> list[str]:
    """For each group: why it stays, or "" when it is settled."""
    groups = list(groups)
    rows = [row for group in groups for row in group]
    order_ids = {row.order_id for row in rows if row.order_id}
    refund_ids = {row.refund_id for row in rows if row.refund_id}
    order_ids |= set(Refund.objects.filter(pk__in=refund_ids).values_list("order_id", flat=True))
    flagged = set(
        Order.objects.filter(pk__in=order_ids, needs_attention=True).values_list("pk", flat=True)
    )
    open_refunds = Refund.objects.filter(status__in=REFUND_OPEN)
    refunding = set(open_refunds.filter(order_id__in=order_ids).values_list("order_id", flat=True))
    open_refund_ids = set(open_refunds.filter(pk__in=refund_ids).values_list("pk", flat=True))
    refund_orders = dict(Refund.objects.filter(pk__in=refund_ids).values_list("pk", "order_id"))

    def reason(group: list[PaymentNotification]) -> str:
        if any(row.received_at >= before for row in group):
            return KeptBecause.RECENT_REPROCESS
        if group[-1].outcome in NOT_FINAL:
            return KeptBecause.NOT_FINAL
        orders = {row.order_id for row in group}
        orders |= {refund_orders.get(row.refund_id) for row in group}
        if orders & flagged:
            return KeptBecause.FLAGGED
        if orders & refunding or {row.refund_id for row in group} & open_refund_ids:
            return KeptBecause.REFUND_OPEN
        return ""

    return [reason(group) for group in groups]


def _archive(rows: list[PaymentNotification], before: datetime) -> LedgerArchive:
    lines = [_line(row) for row in rows]
    # mtime=0: the same rows always make the same bytes, hence the same name and hash.
    data = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0)
    sha256 = hashlib.sha256(data).hexdigest()
    name = _store(f"{FOLDER}/notifications-{rows[0].pk}-{rows[-1].pk}-{sha256[:16]}.jsonl.gz", data)
    stored = _read_back(name)
    if hashlib.sha256(stored).hexdigest() != sha256 or _lines(stored) != lines:
        raise ArchiveError(f"{name} does not read back as written; nothing was deleted")
    kept = LedgerArchive.objects.create(
        file=name,
        sha256=sha256,
        rows=len(rows),
        first_id=rows[0].pk,
        last_id=rows[-1].pk,
        first_received_at=min(row.received_at for row in rows),
        last_received_at=max(row.received_at for row in rows),
        cut_off=before,
    )
    _delete(rows)
    return kept


def _store(name: str, data: bytes) -> str:
    """Write the file, or find it already there from a batch that did not commit."""
    if default_storage.exists(name):
        if _read_back(name) == data:
            return name
        raise ArchiveError(f"{name} exists with other content; nothing was deleted")
    return default_storage.save(name, ContentFile(data))


def _read_back(name: str) -> bytes:
    with default_storage.open(name, "rb") as stored:
        return stored.read()


def _delete(rows: list[PaymentNotification]) -> None:
    """Reprocesses before the rows they point at (``reprocess_of`` protects those)."""
    pks = [row.pk for row in rows]
    reprocesses = [row.pk for row in rows if row.reprocess_of_id]
    deleted = PaymentNotification.objects.filter(pk__in=reprocesses).delete()[0]
    deleted += PaymentNotification.objects.filter(pk__in=pks).delete()[0]
    if deleted != len(rows):
        raise ArchiveError(f"deleted {deleted} rows instead of {len(rows)}")


def _line(row: PaymentNotification) -> str:
    """One row as Django serializes it (``{"model", "pk", "fields"}``, foreign keys as ids),
    but with times to the microsecond: Django's JSON encoder would keep milliseconds."""
    fields = {}
    for f in PaymentNotification._meta.concrete_fields:
        if f.primary_key:
            continue
        value = getattr(row, f.attname)
        fields[f.name] = value.isoformat() if isinstance(value, datetime) else value
    return json.dumps(
        {"model": MODEL_LABEL, "pk": row.pk, "fields": fields},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _lines(data: bytes) -> list[str]:
    return gzip.decompress(data).decode("utf-8").splitlines()


def archive_rows(kept: LedgerArchive) -> list[dict]:
    """The rows of an archive, as stored (``{"model", "pk", "fields"}``)."""
    return [json.loads(line) for line in _lines(_read_back(kept.file.name))]


def archive_verify(kept: LedgerArchive) -> str:
    """ "" when the file is there with its hash and row count, else what is wrong."""
    try:
        data = _read_back(kept.file.name)
    except OSError as exc:
        return f"{kept.file.name}: cannot be read ({exc})"
    if hashlib.sha256(data).hexdigest() != kept.sha256:
        return f"{kept.file.name}: SHA-256 differs from the one recorded"
    try:
        count = len(_lines(data))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        return f"{kept.file.name}: unreadable ({exc})"
    if count != kept.rows:
        return f"{kept.file.name}: {count} rows, {kept.rows} recorded"
    return ""
