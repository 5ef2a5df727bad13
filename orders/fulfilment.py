"""Fulfilment: shipping paid orders, the shopper's confirmation of receipt, and the
warehouse's CSV of shipments (docs/INVARIANTS.md §7 ``ship_orders``, §8).

Fulfilment is separate from payment: ``Order.status`` says where the money is,
``Order.fulfilment_status`` where the goods are (unfulfilled → shipped → received). A partly
refunded order is still ``paid`` and ships; a refund never touches fulfilment, so a refunded
order keeps its shipping history.

Exactly once: ``order_ship`` locks the order's row and moves it ``unfulfilled → shipped``
with a conditional UPDATE (the anchor where a row lock is a no-op, as on SQLite), then
records one ``Shipment``. Shipping again with the same details (a resubmitted admin page,
the same CSV run twice, two staff at once) is ``ALREADY_SHIPPED`` and changes nothing; other
details are refused: a shipment is never replaced silently.

Uploading to WeChat (§8 "durable and retried"): orders imports nothing above it, so a new
shipment is announced with the ``orders.signals.shipment_recorded`` signal, sent by
``transaction.on_commit`` from ``_ship_locked``: only once the shipment is committed.
``shipping`` receives it, marks the upload ``pending`` (when uploads apply) and enqueues
it; the shipment is created ``not_required`` and nothing here waits on WeChat or the queue.

Personal data: the address and the shopper's phone number are never logged; log lines carry
the ``out_trade_no`` and the logistics type only.

Messages are made when an error is turned into text (``str()``), in the language active
then: staff's in admin, English in the command and the API.
"""

import csv
import logging
import re
from dataclasses import dataclass
from functools import partial
from typing import IO

from django.db import DatabaseError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from orders.models import FulfilmentStatus, Order, Shipment
from orders.services import OrderError
from orders.signals import shipment_recorded

logger = logging.getLogger(__name__)

LogisticsType = Shipment.LogisticsType

# WeChat's express_company is one of its delivery ids (SF, YTO, JTSD, …) and its tracking
# numbers are letters and digits; both fit 64 characters (our columns), well under WeChat's
# 128 bytes (docs/protocol/miniprogram-server-api.md §2.4).
DETAIL_MAX_CHARS = 64
CODE = re.compile(r"[A-Za-z0-9-]{1,64}")


class ShipOutcome(models.TextChoices):
    SHIPPED = "shipped", _("shipped")
    ALREADY_SHIPPED = "already_shipped", _("already shipped")


class ShipRefusal(models.TextChoices):
    UNPAID = "unpaid", _("not paid")
    CLOSED = "closed", _("closed")
    REFUNDED = "refunded", _("refunded in full")
    SHIPPED_OTHERWISE = "shipped_otherwise", _("already shipped otherwise")
    INVALID = "invalid", _("invalid shipment details")


class ShipRefused(OrderError):
    """Shipping refused; ``str()`` is safe to show staff. ``field`` names the bad input
    (``logistics_type``, ``express_company``, ``tracking_no``) when ``reason`` is INVALID."""

    def __init__(self, reason: ShipRefusal, message, field: str = "", **params):
        # Mutation testing: the exception's args are never read (str() is below).
        super().__init__(reason)  # pragma: no mutate
        self.reason, self.message, self.field, self.params = reason, message, field, params

    def __str__(self) -> str:
        # pragma: no mutate start ("text" % {} is "text": always formatting is equivalent)
        return str(self.message) % self.params if self.params else str(self.message)
        # pragma: no mutate end


@dataclass(frozen=True)
class ShipmentDetails:
    """How an order ships, cleaned: stripped, the company code in capitals."""

    logistics_type: str
    express_company: str = ""
    tracking_no: str = ""

    def same_as(self, shipment: Shipment) -> bool:
        """What shipping again with these details would repeat: the same type and, for
        express, the same company and tracking number."""
        if self.logistics_type != shipment.logistics_type:
            return False
        if self.logistics_type != LogisticsType.EXPRESS:
            return True
        return (self.express_company, self.tracking_no) == (
            shipment.express_company,
            shipment.tracking_no,
        )


@dataclass(frozen=True)
class ShipResult:
    outcome: ShipOutcome
    shipment: Shipment

    @property
    def shipped(self) -> bool:
        """True when this call shipped the order (False: it had shipped just so before)."""
        return self.outcome == ShipOutcome.SHIPPED


def shipment_details_clean(
    *, logistics_type: str, express_company: str = "", tracking_no: str = ""
) -> ShipmentDetails:
    """The details as they will be stored, or ``ShipRefused`` (INVALID) naming the field.

    Express needs the company (WeChat's code, e.g. SF) and the tracking number; the other
    types need neither but may carry them. Both are letters, digits and dashes: what
    WeChat's codes and carriers' numbers are made of, and nothing a spreadsheet would run.
    """
    kind = str(logistics_type or "").strip()
    company = str(express_company or "").strip().upper()
    number = str(tracking_no or "").strip()
    if kind not in LogisticsType.values:
        raise ShipRefused(
            ShipRefusal.INVALID,
            _("Unknown logistics type “%(value)s”: express, same_city, virtual or self_pickup."),
            field="logistics_type",
            value=kind[:DETAIL_MAX_CHARS],
        )
    if kind == LogisticsType.EXPRESS and not company:
        raise ShipRefused(
            ShipRefusal.INVALID,
            _("Express delivery needs the express company (WeChat's code, e.g. SF)."),
            field="express_company",
        )
    if kind == LogisticsType.EXPRESS and not number:
        raise ShipRefused(
            ShipRefusal.INVALID,
            _("Express delivery needs the tracking number."),
            field="tracking_no",
        )
    if company and not CODE.fullmatch(company):
        raise ShipRefused(
            ShipRefusal.INVALID,
            _(
                "The express company is WeChat's code for it (e.g. SF, YTO, ZTO): at most "
                "%(max)d letters, digits or dashes."
            ),
            field="express_company",
            max=DETAIL_MAX_CHARS,
        )
    if number and not CODE.fullmatch(number):
        raise ShipRefused(
            ShipRefusal.INVALID,
            _("The tracking number may only have letters, digits and dashes, at most %(max)d."),
            field="tracking_no",
            max=DETAIL_MAX_CHARS,
        )
    return ShipmentDetails(logistics_type=kind, express_company=company, tracking_no=number)


def order_ship(
    *,
    order: Order,
    logistics_type: str,
    express_company: str = "",
    tracking_no: str = "",
    shipped_by: User | None = None,
) -> ShipResult:
    """Ship a paid order once: ``unfulfilled → shipped`` and one ``Shipment``.

    The same details again are ``ALREADY_SHIPPED`` (nothing written); ``ShipRefused`` for
    an order that is not paid (unpaid, closed — even with a payment that did not fit —,
    refunded in full), that shipped otherwise, or for bad details.
    """
    details = shipment_details_clean(
        logistics_type=logistics_type, express_company=express_company, tracking_no=tracking_no
    )
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        result = _ship_locked(order=locked, details=details, shipped_by=shipped_by)
    order.status, order.fulfilment_status = locked.status, locked.fulfilment_status
    order.shipped_at = locked.shipped_at
    if result.shipped:
        logger.info(
            "order shipped out_trade_no=%s logistics_type=%s",
            order.out_trade_no,
            details.logistics_type,
        )
    return result


def _ship_locked(*, order: Order, details: ShipmentDetails, shipped_by: User | None) -> ShipResult:
    # Already shipped comes first: running yesterday's file again after a refund still
    # says "already shipped", not "refunded".
    if order.fulfilment_status != FulfilmentStatus.UNFULFILLED:
        return _shipped_before(order=order, details=details)
    _refuse_unless_paid(order)
    now = timezone.now()
    updated = Order.objects.filter(
        pk=order.pk, status=Order.Status.PAID, fulfilment_status=FulfilmentStatus.UNFULFILLED
    ).update(fulfilment_status=FulfilmentStatus.SHIPPED, shipped_at=now)
    if not updated:
        # Only where the row lock is a no-op: another writer came between read and update.
        order.refresh_from_db(fields=["status", "fulfilment_status", "shipped_at"])
        if order.fulfilment_status != FulfilmentStatus.UNFULFILLED:
            return _shipped_before(order=order, details=details)
        _refuse_unless_paid(order)
        # pragma: no mutate start (unreachable, so the message's mutants are equivalent)
        raise AssertionError("unreachable: a paid, unshipped order was not updated")
        # pragma: no mutate end
    shipment = Shipment.objects.create(
        order=order,
        logistics_type=details.logistics_type,
        express_company=details.express_company,
        tracking_no=details.tracking_no,
        shipped_at=now,
        shipped_by=shipped_by,
    )
    # The upload to WeChat is enqueued by whoever receives this, after the commit.
    transaction.on_commit(
        partial(shipment_recorded.send_robust, sender=Shipment, shipment=shipment)
    )
    order.fulfilment_status, order.shipped_at = FulfilmentStatus.SHIPPED, now
    return ShipResult(outcome=ShipOutcome.SHIPPED, shipment=shipment)


def _shipped_before(*, order: Order, details: ShipmentDetails) -> ShipResult:
    shipments = list(order.shipments.all())
    for shipment in shipments:
        if details.same_as(shipment):
            return ShipResult(outcome=ShipOutcome.ALREADY_SHIPPED, shipment=shipment)
    if not shipments:
        raise ShipRefused(
            ShipRefusal.SHIPPED_OTHERWISE, _("already marked shipped, without a shipment here")
        )
    last = shipments[-1]
    as_shipped = " ".join(
        part
        for part in (last.get_logistics_type_display(), last.express_company, last.tracking_no)
        if part
    )
    raise ShipRefused(
        ShipRefusal.SHIPPED_OTHERWISE,
        _("already shipped as %(shipment)s; a shipment is never replaced"),
        shipment=as_shipped,
    )


def _refuse_unless_paid(order: Order) -> None:
    if order.status == Order.Status.PAID:
        return
    if order.status == Order.Status.UNPAID:
        raise ShipRefused(ShipRefusal.UNPAID, _("not paid: only paid orders ship"))
    if order.status == Order.Status.REFUNDED:
        raise ShipRefused(ShipRefusal.REFUNDED, _("refunded in full: it does not ship"))
    if order.transaction_id:
        raise ShipRefused(
            ShipRefusal.CLOSED,
            _(
                "closed: its payment did not fit the order (see why it needs attention); "
                "refund it rather than ship it"
            ),
        )
    raise ShipRefused(ShipRefusal.CLOSED, _("closed: it was never paid"))


# -- receipt ---------------------------------------------------------------------------------


class ReceiveOutcome(models.TextChoices):
    RECEIVED = "received", _("received")
    ALREADY_RECEIVED = "already_received", _("already received")


class ReceiveRefused(OrderError):
    """Receipt confirmed for an order that has not shipped (409, with its state)."""

    status_code = 409

    def __init__(self, fulfilment_status: str):
        # Mutation testing: the exception's args are never read (str() is below).
        super().__init__(fulfilment_status)  # pragma: no mutate
        self.fulfilment_status = fulfilment_status

    def __str__(self) -> str:
        return str(_("The order has not shipped yet: confirm receipt once it has arrived."))

    def extra(self) -> dict[str, object]:
        return {"fulfilment_status": self.fulfilment_status}


@dataclass(frozen=True)
class ReceiveResult:
    outcome: ReceiveOutcome
    order: Order


def order_receive(*, order: Order) -> ReceiveResult:
    """``shipped → received``, once (the conditional UPDATE is the anchor); confirming
    again is ``ALREADY_RECEIVED``; an order not shipped raises ``ReceiveRefused``."""
    now = timezone.now()
    updated = Order.objects.filter(pk=order.pk, fulfilment_status=FulfilmentStatus.SHIPPED).update(
        fulfilment_status=FulfilmentStatus.RECEIVED, received_at=now
    )
    if updated:
        order.fulfilment_status, order.received_at = FulfilmentStatus.RECEIVED, now
        logger.info("order received out_trade_no=%s", order.out_trade_no)
        return ReceiveResult(outcome=ReceiveOutcome.RECEIVED, order=order)
    order.fulfilment_status, order.received_at = Order.objects.values_list(
        "fulfilment_status", "received_at"
    ).get(pk=order.pk)
    if order.fulfilment_status == FulfilmentStatus.RECEIVED:
        return ReceiveResult(outcome=ReceiveOutcome.ALREADY_RECEIVED, order=order)
    raise ReceiveRefused(order.fulfilment_status)


# -- the warehouse's CSV (docs/INVARIANTS.md §7 ship_orders) -----------------------------------

CSV_HEADER = ("out_trade_no", "logistics_type", "express_company", "tracking_no")
CSV_MAX_BYTES = 5 * 1024 * 1024
CSV_MAX_LINES = 10_000
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class CsvRefused(OrderError):
    """The whole file is refused (nothing shipped); ``str()`` is safe to show staff."""

    def __init__(self, message, **params):
        # Mutation testing: the exception's args are never read (str() is below).
        super().__init__(message)  # pragma: no mutate
        self.message, self.params = message, params

    def __str__(self) -> str:
        # pragma: no mutate start ("text" % {} is "text": always formatting is equivalent)
        return str(self.message) % self.params if self.params else str(self.message)
        # pragma: no mutate end


class CsvLineStatus(models.TextChoices):
    SHIPPED = "shipped", _("shipped")
    ALREADY_SHIPPED = "already_shipped", _("already shipped")
    FAILED = "failed", _("not shipped")


@dataclass(frozen=True)
class CsvLineResult:
    line: int  # in the file, the header being line 1
    out_trade_no: str
    status: CsvLineStatus
    reason: str = ""  # why not shipped, for staff

    @property
    def ok(self) -> bool:
        return self.status != CsvLineStatus.FAILED

    @property
    def label(self) -> str:
        """What the line is called in a report: its order number, or its line number."""
        return self.out_trade_no or f"line {self.line}"

    @property
    def text(self) -> str:
        """``shipped``, ``already shipped`` or why not."""
        return self.reason if self.status == CsvLineStatus.FAILED else str(self.status.label)


@dataclass(frozen=True)
class _Line:
    number: int
    cells: list[str] | None  # None: not readable as CSV


def shipments_from_csv(
    source: str | bytes | IO, *, shipped_by: User | None = None
) -> list[CsvLineResult]:
    """Ship every line of the warehouse's file (``out_trade_no,logistics_type,
    express_company,tracking_no``); one result per line, in the file's order.

    UTF-8 with or without a BOM, CRLF or LF, blank lines and whitespace around cells are
    fine. A bad line (columns, type, missing number, unknown order, an order that cannot
    ship) is reported and the others still ship. ``CsvRefused``, and nothing shipped, for
    a file that is not UTF-8 text, has no header, or is over the size or line limits.
    """
    lines = _csv_lines(_csv_text(source))
    return [_csv_ship_line(line, shipped_by=shipped_by) for line in lines]


def _csv_text(source: str | bytes | IO) -> str:
    data = source.read(CSV_MAX_BYTES + 1) if hasattr(source, "read") else source
    if len(data) > CSV_MAX_BYTES:
        raise CsvRefused(
            _("The file is larger than %(size)d MB: split it into smaller files."),
            size=CSV_MAX_BYTES // (1024 * 1024),
        )
    if isinstance(data, bytes):
        try:
            # Mutation testing: "UTF-8-SIG" names the same codec (equivalent mutant).
            data = data.decode("utf-8-sig")  # pragma: no mutate
        except UnicodeDecodeError:
            raise CsvRefused(
                _("The file is not UTF-8 text: save it as “CSV UTF-8” and upload it again.")
            ) from None
    # A NUL never is in text (and PostgreSQL refuses it in a query): a binary file.
    if "\x00" in data:
        raise CsvRefused(_("The file is not text: upload the warehouse's CSV file."))
    return data.removeprefix("\ufeff")


def _csv_lines(text: str) -> list[_Line]:
    """The data lines under the header (blank lines skipped), each parsed on its own so a
    broken quote spoils its line only (no value here can span lines)."""
    lines = []
    header_seen = False  # pragma: no mutate (None is as false: equivalent)
    for number, raw in enumerate(_LINE_BREAK.split(text), start=1):
        if not raw.strip():
            continue
        try:
            cells = [cell.strip() for cell in next(csv.reader([raw], strict=True))]
        except csv.Error:
            cells = None
        if not header_seen:
            if cells is None or tuple(cell.lower() for cell in cells) != CSV_HEADER:
                raise CsvRefused(
                    _("The first line must be the header %(header)s."), header=",".join(CSV_HEADER)
                )
            header_seen = True
            continue
        lines.append(_Line(number=number, cells=cells))
        if len(lines) > CSV_MAX_LINES:
            raise CsvRefused(
                _("The file has more than %(max)s lines: split it into smaller files."),
                max=f"{CSV_MAX_LINES:,}",
            )
    if not header_seen:
        raise CsvRefused(
            _("The first line must be the header %(header)s."), header=",".join(CSV_HEADER)
        )
    return lines


def _csv_ship_line(line: _Line, *, shipped_by: User | None) -> CsvLineResult:
    def failed(reason, out_trade_no: str = "", **params) -> CsvLineResult:
        # Mutation testing: "text" % {} is "text", so always formatting is equivalent.
        text = str(reason) % params if params else str(reason)  # pragma: no mutate
        return CsvLineResult(line.number, out_trade_no, CsvLineStatus.FAILED, text)

    if line.cells is None:
        return failed(_("malformed line: not readable as CSV (a quote not closed?)"))
    if len(line.cells) != len(CSV_HEADER):
        return failed(
            _("malformed line: expected %(expected)d columns, found %(found)d"),
            line.cells[0][:64],
            expected=len(CSV_HEADER),
            found=len(line.cells),
        )
    out_trade_no, kind, company, number = line.cells
    if not out_trade_no:
        return failed(_("malformed line: no out_trade_no"))
    order = Order.objects.filter(out_trade_no=out_trade_no).first()
    if order is None:
        return failed(_("unknown order"), out_trade_no[:64])
    try:
        result = order_ship(
            order=order,
            logistics_type=kind,
            express_company=company,
            tracking_no=number,
            shipped_by=shipped_by,
        )
    except ShipRefused as exc:
        return failed(str(exc), out_trade_no)
    except DatabaseError:
        # One line's database trouble (a lock timeout) fails that line alone.
        logger.exception("shipping failed out_trade_no=%s", out_trade_no)
        return failed(_("database error: nothing shipped, try this line again"), out_trade_no)
    status = CsvLineStatus.SHIPPED if result.shipped else CsvLineStatus.ALREADY_SHIPPED
    return CsvLineResult(line.number, out_trade_no, status)
