"""``python manage.py archive_notifications`` (payments/archive.py): settled ledger rows older
than a cut-off move into hashed, compressed files in storage, verified before they leave
the database; nothing else moves, and nothing is ever lost."""

import gzip
import hashlib
from datetime import date, datetime, time, timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from core.times import shop_timezone
from payments import archive
from payments.models import LedgerArchive, PaymentNotification, Refund
from payments.notify import notification_reprocess
from tests.factories import make_order, notify_body, post_notify

pytestmark = pytest.mark.django_db

Outcome = PaymentNotification.Outcome
CUT_OFF = date(2025, 6, 1)
OLD = datetime(2025, 3, 1, 12, tzinfo=shop_timezone())  # before the cut-off
RECENT = datetime(2025, 6, 2, 0, 30, tzinfo=shop_timezone())  # after it


def _at(rows, moment: datetime) -> None:
    PaymentNotification.objects.filter(pk__in=[r.pk for r in rows]).update(received_at=moment)


def _ledger(request) -> dict[str, set[int]]:
    """A ledger with a row of each kind, made the way the shop makes them; ``settled`` are
    the rows an archive may take, ``kept`` the others. Archives go through the default
    storage: a temporary MEDIA_ROOT, never the repository's."""
    shopper, products = request.getfixturevalue("shopper"), request.getfixturevalue("products")
    settings = request.getfixturevalue("settings")
    settings.MEDIA_ROOT = request.getfixturevalue("tmp_path") / "media"
    settled, kept = set(), set()
    minutes = iter(range(1, 100))

    def paid_order():
        """Paid through a notify, as WeChat pays: each with its own transaction id."""
        n = next(minutes)
        order = make_order(shopper, products, n=n)
        assert post_notify(notify_body(order, transaction_id=f"42{n:026d}")).status_code == 200
        order.refresh_from_db()
        assert order.status == order.Status.PAID
        return order

    paid = paid_order()  # paid, then a duplicate: both final
    post_notify(notify_body(paid, transaction_id=paid.transaction_id))
    settled |= {r.pk for r in paid.notifications.all()}

    flagged = paid_order()  # its order needs a person
    flagged.needs_attention, flagged.attention_reason = True, "Paid twice?"
    flagged.save()
    kept |= {r.pk for r in flagged.notifications.all()}

    refunding = paid_order()  # a refund still waiting for WeChat
    Refund.objects.create(order=refunding, out_refund_no="R-open-1", refund_fee=100)
    kept |= {r.pk for r in refunding.notifications.all()}

    refunded = paid_order()  # a refund WeChat settled
    Refund.objects.create(
        order=refunded, out_refund_no="R-done-1", refund_fee=100, status=Refund.Status.SUCCESS
    )
    settled |= {r.pk for r in refunded.notifications.all()}

    post_notify(b"<xml><return_code>SUCCESS</return_code>")  # unreadable: refused, final
    settled.add(PaymentNotification.objects.latest("pk").pk)

    failed = PaymentNotification.objects.create(  # failed and never reprocessed
        raw_body="<xml/>", outcome=Outcome.ERROR, replied="FAIL", detail="Processing failed"
    )
    in_flight = PaymentNotification.objects.create(raw_body="<xml/>")  # still RECEIVED
    kept |= {failed.pk, in_flight.pk}

    # Failed while processing (the database was down), reprocessed in admin since: settled
    # as a group, its newest row being final.
    unpaid = make_order(shopper, products, n=next(minutes))
    body = notify_body(unpaid, transaction_id="4299999")
    early = PaymentNotification.objects.create(
        raw_body=body.decode(), outcome=Outcome.ERROR, replied="FAIL"
    )
    again = notification_reprocess(notification=early)
    assert again.outcome == Outcome.PAID
    settled |= {early.pk, again.pk}

    # Old, but reprocessed after the cut-off: the group stays whole in the database.
    old_root = paid_order().notifications.get()
    recent_reprocess = notification_reprocess(notification=old_root)
    kept |= {old_root.pk, recent_reprocess.pk}

    young = paid_order().notifications.get()  # received after the cut-off
    kept.add(young.pk)

    everything = PaymentNotification.objects.all()
    _at(everything, OLD)
    _at([recent_reprocess, young], RECENT)
    assert settled | kept == set(everything.values_list("pk", flat=True))
    assert not settled & kept
    return {"settled": settled, "kept": kept}


def _run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("archive_notifications", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _snapshot(pks) -> dict[int, dict]:
    """Every column of each row."""
    return {row["id"]: row for row in PaymentNotification.objects.filter(pk__in=pks).values()}


def _archived_pks() -> list[int]:
    return sorted(
        line["pk"] for a in LedgerArchive.objects.all() for line in archive.archive_rows(a)
    )


def _remaining() -> set[int]:
    return set(PaymentNotification.objects.values_list("pk", flat=True))


class TestWhatMoves:
    def test_exactly_the_settled_rows_older_than_the_cut_off(self, request):
        ledger = _ledger(request)
        out, _ = _run("--before", str(CUT_OFF))

        assert _remaining() == ledger["kept"]
        assert _archived_pks() == sorted(ledger["settled"])
        assert f"{len(ledger['settled'])} rows archived" in out

    def test_the_rows_kept_and_why(self, request):
        _ledger(request)
        out, _ = _run("--before", str(CUT_OFF))

        assert "order flagged" in out and "refund still open" in out
        assert "not processed to the end" in out and "reprocessed after the cut-off" in out

    def test_small_batches_archive_the_same_rows(self, request):
        ledger = _ledger(request)
        _run("--before", str(CUT_OFF), "--batch-size", "2")

        assert _remaining() == ledger["kept"]
        assert _archived_pks() == sorted(ledger["settled"])
        assert LedgerArchive.objects.count() > 2


class TestEvidence:
    def test_the_archive_is_the_deleted_rows_as_they_were(self, request):
        ledger = _ledger(request)
        before = _snapshot(ledger["settled"])

        _run("--before", str(CUT_OFF))
        assert not PaymentNotification.objects.filter(pk__in=ledger["settled"]).exists()
        # Django's own loader reads an archive back into the ledger, unchanged.
        for kept in LedgerArchive.objects.all():
            call_command("loaddata", default_storage.path(kept.file.name), verbosity=0)

        assert _snapshot(ledger["settled"]) == before

    def test_each_file_has_the_recorded_hash_and_row_count(self, request):
        _ledger(request)
        _run("--before", str(CUT_OFF), "--batch-size", "3")

        for kept in LedgerArchive.objects.all():
            with default_storage.open(kept.file.name, "rb") as stored:
                data = stored.read()
            assert hashlib.sha256(data).hexdigest() == kept.sha256
            lines = gzip.decompress(data).decode().splitlines()
            assert len(lines) == kept.rows
            assert (kept.first_id, kept.last_id) == (
                min(archive.archive_rows(kept), key=lambda r: r["pk"])["pk"],
                max(archive.archive_rows(kept), key=lambda r: r["pk"])["pk"],
            )

    def test_a_file_holds_its_rows_in_id_order_whatever_the_groups(self, request):
        """A reprocess made long after its first row sits between other rows by id."""
        ledger = _ledger(request)
        first = PaymentNotification.objects.get(pk=min(ledger["settled"]))
        later = notification_reprocess(notification=first)
        _at([later], OLD)

        _run("--before", str(CUT_OFF))

        kept = LedgerArchive.objects.get()
        pks = [row["pk"] for row in archive.archive_rows(kept)]
        assert pks == sorted(ledger["settled"] | {later.pk})
        assert (kept.first_id, kept.last_id) == (pks[0], pks[-1])

    def test_verify_finds_a_file_that_changed(self, request):
        _ledger(request)
        _run("--before", str(CUT_OFF))
        assert "archives verified: 1" in _run("--verify")[0]
        kept = LedgerArchive.objects.get()
        with open(default_storage.path(kept.file.name), "ab") as stored:
            stored.write(b"\0")

        with pytest.raises(CommandError, match=kept.file.name):
            _run("--verify")


class TestSafeToRun:
    def test_a_second_run_changes_nothing(self, request):
        ledger = _ledger(request)
        _run("--before", str(CUT_OFF))
        files = sorted(default_storage.listdir("ledger")[1])

        out, _ = _run("--before", str(CUT_OFF))

        assert "0 rows archived" in out
        assert LedgerArchive.objects.count() == 1
        assert _remaining() == ledger["kept"]
        assert sorted(default_storage.listdir("ledger")[1]) == files

    def test_dry_run_changes_nothing(self, request):
        ledger = _ledger(request)
        before = _snapshot(_remaining())

        out, _ = _run("--before", str(CUT_OFF), "--dry-run")

        assert f"{len(ledger['settled'])} rows would be archived" in out
        assert _snapshot(_remaining()) == before
        assert not LedgerArchive.objects.exists()
        assert not default_storage.exists("ledger")

    def test_a_cut_off_less_than_93_days_ago_is_refused(self, request):
        _ledger(request)
        too_recent = date.today() - timedelta(days=90)

        with pytest.raises(CommandError, match="93 days"):
            _run("--before", str(too_recent))

        assert not LedgerArchive.objects.exists()

    @pytest.mark.parametrize("value", ["2025-13-01", "yesterday", ""])
    def test_a_bad_date_is_refused(self, request, value):
        _ledger(request)
        with pytest.raises(CommandError):
            _run("--before", value)

    def test_the_day_is_a_beijing_day(self, request):
        """00:30 on June 1 in Beijing (16:30 UTC on May 31) is not before June 1."""
        ledger = _ledger(request)
        row = PaymentNotification.objects.get(pk=min(ledger["settled"]))
        _at([row], datetime.combine(CUT_OFF, time(0, 30), tzinfo=shop_timezone()))

        _run("--before", str(CUT_OFF))

        assert row.pk in _remaining()


@pytest.mark.django_db(transaction=True)
class TestInterrupted:
    """A run that dies mid-batch (the database, the storage or the process failing) leaves
    every row either in the database or in a recorded, verified archive; the next run
    finishes the job. Real commits here (transaction=True)."""

    def test_a_failure_after_the_rows_were_deleted_rolls_the_batch_back(self, request):
        ledger = _ledger(request)
        real, calls = archive._delete, []

        def dies_on_the_second_batch(rows):
            calls.append(rows)
            real(rows)  # rows gone inside the batch's transaction…
            if len(calls) == 2:
                raise RuntimeError("killed")  # …which never commits

        with (
            mock.patch.object(archive, "_delete", dies_on_the_second_batch),
            pytest.raises(RuntimeError),
        ):
            _run("--before", str(CUT_OFF), "--batch-size", "2")

        first = {row.pk for row in calls[0]}
        assert _archived_pks() == sorted(first)
        assert _remaining() == (ledger["settled"] - first) | ledger["kept"]

        _run("--before", str(CUT_OFF), "--batch-size", "2")

        assert _remaining() == ledger["kept"]
        assert _archived_pks() == sorted(ledger["settled"])
        # The file of the batch that died was written again, the same: no second copy.
        assert len(default_storage.listdir("ledger")[1]) == LedgerArchive.objects.count()

    def test_a_file_that_does_not_read_back_deletes_nothing(self, request):
        ledger = _ledger(request)
        unreachable = OSError("bucket unreachable")
        with (
            mock.patch.object(archive, "_read_back", side_effect=unreachable),
            pytest.raises(CommandError, match="bucket unreachable"),
        ):
            _run("--before", str(CUT_OFF))

        assert _remaining() == ledger["settled"] | ledger["kept"]
        assert not LedgerArchive.objects.exists()

        _run("--before", str(CUT_OFF))  # the file left behind is the same file: reused

        assert _archived_pks() == sorted(ledger["settled"])
        assert len(default_storage.listdir("ledger")[1]) == LedgerArchive.objects.count()
