"""Every write to products and orders: creation, payment and flagging (STYLE: services)."""

import functools
import logging
import secrets
import unicodedata
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from accounts.models import User
from core.config import pay_notify_url
from core.errors import DomainError
from core.times import compact_timestamp
from orders.models import Order, OrderItem, Product

logger = logging.getLogger(__name__)

# WeChat's total_fee is a 32-bit Int; our columns are too.
MAX_TOTAL_FEE = 2**31 - 1
# WeChat's body is String(128), counted in UTF-8 bytes: 40 emoji are 160
# (docs/protocol/wechat-pay-v2.md §12).
BODY_MAX_BYTES = 128
BODY_ELLIPSIS = "…"
# Shown when a product name is nothing but characters the body cannot carry.
BODY_FALLBACK = "商品"


class OrderError(DomainError):
    """A request the shop refuses; ``str()`` is safe to show the shopper. Each subclass
    names its HTTP status (core.errors); one that does not is a 400."""


class ProductUnavailable(OrderError):
    status_code = 400


class TotalFeeMismatch(OrderError):
    status_code = 409

    def __init__(self, expected: int, actual: int):
        super().__init__(
            f"total_fee {expected} does not match the current price {actual} (fen); "
            "refresh the cart."
        )
        self.total_fee = actual

    def extra(self) -> dict[str, object]:
        return {"total_fee": self.total_fee}  # the client shows the current price


class OutOfStock(OrderError):
    status_code = 409

    def __init__(self, product: Product, wanted: int):
        super().__init__(f"Not enough stock for {product.name!r}: {product.stock} left.")
        self.product_id = product.pk
        self.wanted = wanted


class NotAShopper(OrderError):
    status_code = 403


class UnpaidLimitReached(OrderError):
    """The shopper's unpaid orders already hold as much as one shopper may reserve."""

    status_code = 409


class AddressRequired(OrderError):
    """Something in the order ships and no address came with it, or an address came
    incomplete: a 400 shaped like a validation error, naming ``address``
    (docs/INVARIANTS.md §8)."""

    status_code = 400
    MESSAGE = (
        "a complete delivery address is required for products that ship: user_name, "
        "tel_number, province_name, city_name, county_name and detail_info."
    )

    def __init__(self):
        super().__init__(f"address: {self.MESSAGE}")

    def extra(self) -> dict[str, object]:
        return {"errors": {"address": [self.MESSAGE]}}


class IdempotencyKeyReused(OrderError):
    status_code = 409

    def __init__(self, order: Order, differs: str = "other items"):
        # ``differs`` names what changed, never its value: an address is personal data.
        super().__init__(
            f"This Idempotency-Key was used for order {order.out_trade_no} with {differs}; "
            "send a new key for a new order."
        )
        self.out_trade_no = order.out_trade_no

    def extra(self) -> dict[str, object]:
        return {"out_trade_no": self.out_trade_no}


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    quantity: int


@dataclass(frozen=True)
class DeliveryAddress:
    """Where an order ships: ``wx.chooseAddress``'s fields in snake_case, already cleaned
    (the API trims them and refuses control characters). Personal data: never logged."""

    user_name: str
    tel_number: str
    province_name: str
    city_name: str
    county_name: str
    detail_info: str
    postal_code: str = ""

    @property
    def complete(self) -> bool:
        """Every part a parcel needs is there; the postal code may be left out."""
        return all(
            getattr(self, part.name).strip() for part in fields(self) if part.name != "postal_code"
        )

    def as_json(self) -> dict[str, str]:
        """The snapshot kept in ``Order.address``: always all seven keys."""
        return asdict(self)


@dataclass(frozen=True)
class OrderRequest:
    """What ``order_create`` came to: the order, and whether this call made it (False: a
    retry with the same Idempotency-Key got the order its first request made)."""

    order: Order
    created: bool


def order_create(
    *,
    user: User,
    lines: list[OrderLine],
    client_ip: str,
    expected_total_fee: int | None = None,
    idempotency_key: str = "",
    address: DeliveryAddress | None = None,
    remark: str = "",
) -> OrderRequest:
    """Price the order on the server, reserve stock and record it, all or nothing.

    An order with any product that ``requires_shipping`` needs an ``address``, and an
    address given must be complete (else ``AddressRequired``); an order of virtual
    products only needs none, and keeps one that is given (the shopper chose to give it).
    Address and remark are snapshotted on the order.

    With an ``idempotency_key`` (the client's Idempotency-Key) a retried request gets the
    order the first one made (``created`` False) instead of reserving the stock again;
    the same key with other lines, another address or another remark raises
    ``IdempotencyKeyReused``.
    """
    if not user.openid:
        raise NotAShopper("Only shoppers who logged in through WeChat can order.")
    if address is not None and not address.complete:
        raise AddressRequired()
    merged = _merge_lines(lines)
    request = _Placed(lines=merged, address=address.as_json() if address else None, remark=remark)
    # Mutation testing: range(4) is equivalent, the third attempt raises (below).
    for attempt in range(3):  # pragma: no mutate
        try:
            placed = _order_create_once(
                user=user,
                request=request,
                client_ip=client_ip,
                expected_total_fee=expected_total_fee,
                idempotency_key=idempotency_key,
            )
        except IntegrityError:
            # A request with the same key committed its order first: the unique
            # (user, idempotency_key) constraint is the anchor, so answer with that order.
            # pragma: no mutate start (only two requests with one key racing where the row
            # lock is a no-op find the earlier order here; no test can race them this way)
            earlier = (
                _order_for_key(user=user, key=idempotency_key, request=request)
                if idempotency_key
                else None
            )
            if earlier is not None:
                return OrderRequest(earlier, created=False)
            # pragma: no mutate end
            # Otherwise only a clash of the random out_trade_no is worth another try.
            if attempt == 2:
                raise
            logger.warning("order number clash, retrying")
        else:
            if placed.created:
                # Once committed. openid ties the order to the login's log line; out_trade_no
                # to the notify's. Never the address or the remark: personal data
                # (docs/INVARIANTS.md §8).
                logger.info(
                    "order created out_trade_no=%s openid=%s total_fee=%s",
                    placed.order.out_trade_no,
                    placed.order.openid,
                    placed.order.total_fee,
                )
            return placed
    # Mutation testing: the third attempt returns or raises, so its message's mutants are
    # equivalent.
    raise AssertionError("unreachable")  # pragma: no mutate


def _merge_lines(lines: list[OrderLine]) -> "OrderedDict[int, int]":
    merged: OrderedDict[int, int] = OrderedDict()
    for line in lines:
        merged[line.product_id] = merged.get(line.product_id, 0) + line.quantity
    return merged


@dataclass(frozen=True)
class _Placed:
    """What one checkout asked for, as a retry with its Idempotency-Key must repeat it."""

    lines: "OrderedDict[int, int]"
    address: dict[str, str] | None
    remark: str


@transaction.atomic
def _order_create_once(
    *,
    user: User,
    request: _Placed,
    client_ip: str,
    expected_total_fee: int | None,
    idempotency_key: str,
) -> OrderRequest:
    lines = request.lines
    # The shopper's row first: one shopper's checkouts then run one at a time, so the caps
    # count every order already held and a retried key finds the order its twin made.
    # pragma: no mutate start (only the lock matters, not the rows read: its mutants change
    # nothing a test on one process can see; test_concurrent_requests_with_one_key_… races)
    list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
    # pragma: no mutate end
    if idempotency_key:
        earlier = _order_for_key(user=user, key=idempotency_key, request=request)
        if earlier is not None:
            return OrderRequest(earlier, created=False)
    # A plain read: no product row is locked for the prices, so orders of a popular product
    # with unlimited stock never queue behind each other. What is charged is what this read
    # saw, and it is snapshotted on the items; a price saved in admin while the order is
    # being placed applies to the next one, as if it had been saved a moment later.
    by_id = {product.pk: product for product in Product.objects.filter(pk__in=lines.keys())}
    for product_id in lines:
        product = by_id.get(product_id)
        if product is None or not product.active:
            raise ProductUnavailable(f"Product {product_id} does not exist or is not on sale.")
    if request.address is None and any(by_id[pid].requires_shipping for pid in lines):
        raise AddressRequired()
    total_fee = sum(by_id[pid].price * quantity for pid, quantity in lines.items())
    if total_fee > MAX_TOTAL_FEE:
        raise ProductUnavailable("The order total is too large.")
    if expected_total_fee is not None and expected_total_fee != total_fee:
        raise TotalFeeMismatch(expected_total_fee, total_fee)
    _unpaid_limits_check(user=user, lines=lines)
    _stock_refuse_short(products=by_id, lines=lines)

    now = timezone.now().replace(microsecond=0)
    order = Order.objects.create(
        out_trade_no=out_trade_no_new(now),
        user=user,
        openid=user.openid,
        body=_order_body(names=[by_id[pid].name for pid in lines]),
        total_fee=total_fee,
        sign_type=settings.WECHAT_SIGN_TYPE,
        pay_version=settings.WECHAT_PAY_VERSION,
        spbill_create_ip=client_ip,
        notify_url=pay_notify_url(settings.WECHAT_PAY_VERSION),
        idempotency_key=idempotency_key,
        address=request.address,
        remark=request.remark,
        created_at=now,
        expires_at=now + timedelta(minutes=settings.ORDER_TTL_MINUTES),
    )
    OrderItem.objects.bulk_create(
        OrderItem(
            order=order,
            product_id=pid,
            product_name=by_id[pid].name,
            unit_price=by_id[pid].price,
            quantity=quantity,
            stock_reserved=by_id[pid].stock is not None,
        )
        for pid, quantity in lines.items()
    )
    # Last, so that the only product rows this order locks are held for one statement and
    # the commit (every buyer of a flash sale queues on them).
    _stock_reserve(order=order, products=by_id, lines=lines)
    return OrderRequest(order, created=True)


def _order_for_key(*, user: User, key: str, request: _Placed) -> Order | None:
    """The order an earlier request with this Idempotency-Key made, if any."""
    order = Order.objects.filter(user=user, idempotency_key=key).first()
    if order is None:
        return None
    # The lines, address and remark are what the key promised; the total may have changed
    # with the prices.
    if dict(order.items.values_list("product_id", "quantity")) != dict(request.lines):
        raise IdempotencyKeyReused(order)
    if (order.address, order.remark) != (request.address, request.remark):
        raise IdempotencyKeyReused(order, differs="another address or remark")
    logger.info("order replayed out_trade_no=%s for its Idempotency-Key", order.out_trade_no)
    return order


def _unpaid_limits_check(*, user: User, lines: "OrderedDict[int, int]") -> None:
    """Refuse an order beyond what one shopper's unpaid orders may hold.

    Unpaid orders reserve stock and each one is a unifiedorder call: without a cap one
    WeChat account could hold all finite stock, order after order. Counted under the
    shopper's row lock, so concurrent checkouts cannot both slip under it.
    """
    held = OrderItem.objects.filter(order__user=user, order__status=Order.Status.UNPAID).aggregate(
        orders=Count("order_id", distinct=True), units=Sum("quantity")
    )
    max_orders = settings.ORDER_MAX_UNPAID_PER_SHOPPER
    if held["orders"] >= max_orders:
        raise UnpaidLimitReached(
            f"You have {held['orders']} unpaid orders, the most one shopper may hold: "
            "pay or close one first."
        )
    max_units = settings.ORDER_MAX_UNPAID_UNITS_PER_SHOPPER
    units = (held["units"] or 0) + sum(lines.values())
    if units > max_units:
        raise UnpaidLimitReached(
            f"Unpaid orders may hold at most {max_units} units in all; with this order yours "
            f"would hold {units}: pay or close an order, or order fewer."
        )


def _stock_refuse_short(*, products: dict[int, Product], lines: "OrderedDict[int, int]") -> None:
    """Refuse a product the read already shows short, before anything is written: once a
    flash sale is sold out, its refusals write nothing and wait for nobody."""
    for pid in sorted(lines):
        if products[pid].stock is not None and products[pid].stock < lines[pid]:
            raise OutOfStock(products[pid], lines[pid])


def _stock_reserve(
    *, order: Order, products: dict[int, Product], lines: "OrderedDict[int, int]"
) -> None:
    """Take the units of every product with limited stock, as the order's items say.

    One conditional UPDATE per such product (``stock >= quantity``), the check and the
    take in one statement, so stock never goes below 0 however many orders race, and is
    exact where ``select_for_update`` would be a no-op (SQLite). The UPDATE's row lock is
    the only one an order takes on a product, held until the order commits: taken in
    primary-key order, as ``_stock_return`` takes them, so two orders (or an order and a
    close) sharing products cannot deadlock. Products with unlimited stock are not
    touched at all.
    """
    for pid in sorted(lines):
        product, quantity = products[pid], lines[pid]
        if product.stock is None:
            continue
        if Product.objects.filter(pk=pid, stock__gte=quantity).update(stock=F("stock") - quantity):
            continue
        # Refused: say what is left now, not what the read saw. Staff may also have made
        # the stock unlimited meanwhile (then nothing is taken, and nothing may be given
        # back: ``stock_reserved`` False), or deleted a product nobody had ordered yet.
        now = Product.objects.filter(pk=pid).values_list("stock").first()
        if now is None:
            raise ProductUnavailable(f"Product {pid} does not exist or is not on sale.")
        product.stock = now[0]
        if product.stock is not None:
            raise OutOfStock(product, quantity)
        OrderItem.objects.filter(order=order, product_id=pid).update(stock_reserved=False)


def out_trade_no_new(now: datetime) -> str:
    """``20261127114501`` + 18 random hex digits: 32 characters, unguessable, time-sortable.

    72 random bits make a clash between processes practically impossible; the unique
    constraint and ``order_create``'s retry cover the rest.
    """
    return compact_timestamp(now) + secrets.token_hex(9)


def _order_body(*, names: list[str]) -> str:
    """The description on the shopper's bill: the first product's name (and how many
    products when several), cleaned for the wire and cut to WeChat's 128 bytes."""
    first = _body_clean(name=names[0]) or BODY_FALLBACK
    suffix = "" if len(names) == 1 else f" 等{len(names)}件商品"
    # The name is cut, not the count: "… 等3件商品" still says what was bought.
    return _utf8_cut(text=first, max_bytes=BODY_MAX_BYTES - len(suffix.encode())) + suffix


def _body_clean(*, name: str) -> str:
    """``name`` without control characters, which XML 1.0 cannot carry at all (the XML
    builder refuses them) and which have no business on a bill; whitespace runs
    (tabs, newlines) become one space."""
    spaced = " ".join(name.split())
    return "".join(
        ch
        for ch in spaced
        if unicodedata.category(ch)
        not in (
            "Cc",
            # Mutation testing: a name comes from the database, which stores no lone
            # surrogate (Cs): its mutants are equivalent. Kept: XML cannot carry one.
            "Cs",  # pragma: no mutate
        )
        and ch not in "\ufffe\uffff"
    ).strip()


def _utf8_cut(*, text: str, max_bytes: int) -> str:
    """``text`` in at most ``max_bytes`` UTF-8 bytes, ending in "…" when cut, never in
    half a character."""
    # Mutation testing: "UTF-8" names the same codec (equivalent mutants, here and below).
    raw = text.encode("utf-8")  # pragma: no mutate
    if len(raw) <= max_bytes:
        return text
    room = max_bytes - len(BODY_ELLIPSIS.encode("utf-8"))
    # "ignore" drops only the partial character the byte cut left at the end.
    return raw[:room].decode("utf-8", "ignore") + BODY_ELLIPSIS  # pragma: no mutate


def order_set_prepay(*, order: Order, prepay_id: str, expires_at: datetime) -> bool:
    """Store a fresh prepay_id, unless the order stopped being payable meanwhile."""
    updated = Order.objects.filter(pk=order.pk, status=Order.Status.UNPAID).update(
        prepay_id=prepay_id, prepay_expires_at=expires_at
    )
    order.prepay_id, order.prepay_expires_at = prepay_id, expires_at
    return bool(updated)


def order_mark_paid(*, order: Order, transaction_id: str, paid_at: datetime, paid_fee: int) -> bool:
    """unpaid → paid, once. Call inside the transaction that locked ``order``.

    The conditional UPDATE is what makes it exactly once (the row lock only orders
    concurrent notifies on PostgreSQL); the unique transaction_id is the anchor.
    ``paid_fee`` is what WeChat charged: refunds are based on it.
    """
    updated = Order.objects.filter(pk=order.pk, status=Order.Status.UNPAID).update(
        status=Order.Status.PAID, transaction_id=transaction_id, paid_at=paid_at, paid_fee=paid_fee
    )
    if updated:
        order.status, order.transaction_id, order.paid_at, order.paid_fee = (
            Order.Status.PAID,
            transaction_id,
            paid_at,
            paid_fee,
        )
        order_paid_logged(order.out_trade_no)
    return bool(updated)


@dataclass(frozen=True)
class PaidIfFits:
    """What ``order_mark_paid_if_fits`` found: the order, and whether this very payment was
    already recorded on it (a copy of a notify already applied: nothing changed)."""

    order_id: int
    already: bool


@dataclass(frozen=True)
class PayIfFits:
    """The two statements that pay an order a payment fits exactly, with their parameters
    (``order_pay_if_fits``): ``paying`` updates the order and returns its pk, ``already``
    selects the pk of an order that already has this payment. ``order_mark_paid_if_fits``
    runs them; a caller may instead run them inside a statement of its own (payments.notify,
    on PostgreSQL, writes the ledger row in the same statement) and then calls
    ``order_paid_logged`` for an order it paid."""

    out_trade_no: str
    paying: str
    paying_params: list
    already: str
    already_params: list


def order_pay_if_fits(
    *,
    out_trade_no: str,
    transaction_id: str,
    paid_at: datetime,
    paid_fee: int,
    openid: str,
    sign_type: str | None = None,
) -> PayIfFits | None:
    """unpaid → paid in one statement, when the payment fits the order exactly: the order is
    unpaid with no transaction, its total is ``paid_fee``, its payer ``openid`` and, when
    given, it was placed with ``sign_type``; else a read of whether the order already has
    this very payment (``transaction_id``, and ``sign_type`` when given). When neither
    holds nothing changes, and the caller locks the order and lets
    ``payments.services.payment_apply`` decide what the payment means.

    What ``order_mark_paid`` does after ``payment_apply`` has locked and read the order and
    found that it fits, in one conditional ``UPDATE … RETURNING``: one round trip less for a
    first delivery, and for a copy one plain read of one column instead of a locking read
    of the whole row. Exactly once the same way: only an unpaid row without a transaction
    is updated (a concurrent copy waits for that row, then finds it paid), and the unique
    transaction_id is the anchor; a transaction_id, once set, never changes, so a copy needs
    no lock to be recognised.

    None where the database cannot return the pk from an UPDATE (SQLite before 3.35; Django's
    flag for RETURNING after INSERT says the same): every payment then takes the locking way.
    """
    connection = transaction.get_connection()
    if not connection.features.can_return_columns_from_insert:
        return None
    order = [out_trade_no] + ([sign_type] if sign_type is not None else [])
    paid_at_value = Order._meta.get_field("paid_at").get_db_prep_value(paid_at, connection)
    paying, already = _pay_if_fits_sql(sign_type is not None)
    return PayIfFits(
        out_trade_no=out_trade_no,
        paying=paying,
        paying_params=[
            *(Order.Status.PAID, transaction_id, paid_at_value, paid_fee),
            *order,
            *(paid_fee, openid),
        ],
        already=already,
        already_params=[*order, transaction_id],
    )


def order_mark_paid_if_fits(pay: PayIfFits) -> PaidIfFits | None:
    """Run ``order_pay_if_fits``'s statements: the order paid, or found already paid with
    the payment, or None (nothing changed). Call inside the transaction that records the
    payment."""
    with transaction.get_connection().cursor() as cursor:
        cursor.execute(pay.paying, pay.paying_params)
        row = cursor.fetchone()
        if row is not None:
            order_paid_logged(pay.out_trade_no)
            return PaidIfFits(order_id=row[0], already=False)
        cursor.execute(pay.already, pay.already_params)
        row = cursor.fetchone()
    return None if row is None else PaidIfFits(order_id=row[0], already=True)


def order_paid_logged(out_trade_no: str) -> None:
    """The log line of an order paid (unpaid → paid), once the caller has paid it."""
    logger.info("order paid out_trade_no=%s", out_trade_no)


@functools.cache
def _pay_if_fits_sql(with_sign_type: bool) -> tuple[str, str]:
    """The UPDATE that pays an order that fits, and the read that finds it already paid
    with the payment. Names from the model, quoted as PostgreSQL and SQLite both quote
    them; every value is a parameter."""
    names = {f.name: f'"{f.column}"' for f in Order._meta.concrete_fields}
    names["table"] = f'"{Order._meta.db_table}"'
    order = "{out_trade_no} = %s" + (" AND {sign_type} = %s" if with_sign_type else "")
    paying = (
        "UPDATE {table} SET {status} = %s, {transaction_id} = %s, {paid_at} = %s, "  # noqa: S608 (names from the model, values as parameters)
        "{paid_fee} = %s WHERE " + order + " AND {status} = 'unpaid' AND {transaction_id} IS "
        "NULL AND {total_fee} = %s AND {openid} = %s RETURNING {id}"
    )
    # Paid, refunded, or closed with this transaction (Order.has_payment): any status but
    # unpaid, since the transaction_id matches.
    already = (
        "SELECT {id} FROM {table} WHERE "  # noqa: S608 (names from the model, values as parameters)
        + order
        + " AND {transaction_id} = %s AND {status} <> 'unpaid'"
    )
    return paying.format(**names), already.format(**names)


def order_mark_refunded(*, order: Order) -> bool:
    """paid (or paid after closing) → refunded, once, when refunds gave back the total.

    The caller (``payments.refunds``) decides that the sum is complete, inside the
    transaction that locked ``order``; the conditional UPDATE makes it exactly once.
    """
    updated = Order.objects.with_payment().filter(pk=order.pk).update(status=Order.Status.REFUNDED)
    if updated:
        order.status = Order.Status.REFUNDED
        logger.info("order refunded out_trade_no=%s", order.out_trade_no)
    return bool(updated)


def order_flag(*, order: Order, reason: str) -> None:
    """Mark an order for staff attention; the same reason is recorded once.

    The reasons already there are read under the row lock, not taken from ``order``: a
    caller holding an older copy must never overwrite a reason written meanwhile.
    """
    with transaction.atomic():
        current = (
            Order.objects.select_for_update()
            .values_list("attention_reason", flat=True)
            .get(pk=order.pk)
        )
        reasons = [r for r in current.split("\n") if r]
        if reason not in reasons:
            reasons.append(reason)
        text = "\n".join(reasons)
        Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reason=text)
    order.needs_attention, order.attention_reason = True, text
    logger.warning("order flagged out_trade_no=%s reason=%s", order.out_trade_no, reason)


def order_record_unexpected_payment(
    *, order: Order, transaction_id: str, paid_at: datetime, paid_fee: int, reason: str
) -> bool:
    """Record a payment WeChat took that did not buy the order as priced (another amount,
    another payer, or after the order was closed); False if the order already has one.

    WeChat has the money, so the transaction is kept where staff can refund it: the order
    ends closed *with* a transaction (``has_payment``, refundable up to ``paid_fee``,
    skipped by reconciliation), its stock back on sale, flagged with ``reason``. Call
    inside the transaction that locked ``order``.
    """
    was_unpaid = order.status == Order.Status.UNPAID
    now = timezone.now()
    updated = Order.objects.filter(
        pk=order.pk,
        # Mutation testing: a paid or refunded order always has a transaction, so dropping
        # the status condition is equivalent.
        status__in=[Order.Status.UNPAID, Order.Status.CLOSED],  # pragma: no mutate
        transaction_id__isnull=True,
    ).update(
        status=Order.Status.CLOSED,
        transaction_id=transaction_id,
        paid_at=paid_at,
        paid_fee=paid_fee,
        closed_at=order.closed_at or now,
        # A paid trade cannot be closed at WeChat: nothing is left to tell it.
        close_pending_at_wechat=False,
    )
    if not updated:
        return False
    if was_unpaid:
        _stock_return(order=order)
    order.status, order.transaction_id, order.paid_at, order.paid_fee = (
        Order.Status.CLOSED,
        transaction_id,
        paid_at,
        paid_fee,
    )
    order.closed_at, order.close_pending_at_wechat = order.closed_at or now, False
    logger.info("order unexpected payment recorded out_trade_no=%s", order.out_trade_no)
    order_flag(order=order, reason=reason)
    return True


def order_close_local(*, order: Order, pending_at_wechat: bool = False) -> bool:
    """unpaid → closed, giving the reserved stock back; False if it was not unpaid.

    Only our side: telling WeChat is the caller's job (``payments.lifecycle``).
    """
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.status != Order.Status.UNPAID:
            order.status = locked.status
            return False
        now = timezone.now()
        Order.objects.filter(pk=order.pk).update(
            status=Order.Status.CLOSED, closed_at=now, close_pending_at_wechat=pending_at_wechat
        )
        _stock_return(order=locked)
    order.status, order.closed_at = Order.Status.CLOSED, now
    order.close_pending_at_wechat = pending_at_wechat
    logger.info("order closed out_trade_no=%s", order.out_trade_no)
    return True


def _stock_return(*, order: Order) -> None:
    # Products in primary-key order, as order_create locks them.
    reserved = order.items.filter(stock_reserved=True, product__stock__isnull=False)
    for item in reserved.order_by("product_id"):
        Product.objects.filter(pk=item.product_id, stock__isnull=False).update(
            stock=F("stock") + item.quantity
        )


def order_claim_for_reconcile(*, order: Order, seconds: int) -> bool:
    """Claim an order for one reconcile process for ``seconds``; False if another has it."""
    now = timezone.now()
    claimed = (
        Order.objects.filter(pk=order.pk)
        .filter(Q(reconcile_claimed_until__isnull=True) | Q(reconcile_claimed_until__lt=now))
        .update(reconcile_claimed_until=now + timedelta(seconds=seconds))
    )
    return bool(claimed)


def order_clear_close_pending(*, order: Order) -> None:
    Order.objects.filter(pk=order.pk).update(close_pending_at_wechat=False)
    order.close_pending_at_wechat = False


def order_attention_acknowledge(*, order_id: int, shown_reason: str) -> bool:
    """Clear an order's flag for staff who dealt with ``shown_reason``; False, and the
    order stays flagged, when its reasons are no longer exactly those.

    One conditional UPDATE of that column only: a reason added meanwhile (``order_flag``)
    is never acknowledged unseen, and nothing else on the row is written.
    """
    cleared = Order.objects.filter(
        pk=order_id, needs_attention=True, attention_reason=shown_reason
    ).update(needs_attention=False)
    if cleared:
        logger.info("order attention acknowledged pk=%s", order_id)
    return bool(cleared)


def product_stock_adjust(*, product_id: int, by: int) -> bool:
    """Add ``by`` units (remove, when negative) to the stock as it is at this moment, so
    units ordered meanwhile stay reserved; False, nothing changed, when the product has
    unlimited stock or fewer than ``-by`` units left."""
    if by == 0:
        return True
    changed = Product.objects.filter(
        pk=product_id,
        # Mutation testing: NULL >= n is never true in SQL, so stock__gte alone leaves out
        # an unlimited product too (equivalent); kept to say so.
        stock__isnull=False,  # pragma: no mutate
        stock__gte=max(-by, 0),
    ).update(stock=F("stock") + by, updated_at=timezone.now())
    return bool(changed)


def product_stock_limit(*, product_id: int, stock: int) -> bool:
    """Unlimited → ``stock`` units; False, nothing changed, if it was limited meanwhile."""
    changed = Product.objects.filter(pk=product_id, stock__isnull=True).update(
        stock=stock, updated_at=timezone.now()
    )
    return bool(changed)


def product_stock_unlimit(*, product_id: int) -> None:
    """Stock becomes unlimited: orders no longer take units from it."""
    Product.objects.filter(pk=product_id).update(stock=None, updated_at=timezone.now())
