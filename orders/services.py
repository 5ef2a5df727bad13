"""Every write to products and orders: creation, payment and flagging (STYLE: services)."""

import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User
from core.times import compact_timestamp
from orders.models import Order, OrderItem, Product

logger = logging.getLogger(__name__)

# WeChat's total_fee is a 32-bit Int; our columns are too.
MAX_TOTAL_FEE = 2**31 - 1
BODY_MAX_CHARS = 40  # WeChat's limit is 127/128 of unstated units: stay far below (sheet §12)


class OrderError(Exception):
    """A request the shop refuses; ``str()`` is safe to show the shopper."""


class ProductUnavailable(OrderError):
    pass


class TotalFeeMismatch(OrderError):
    def __init__(self, expected: int, actual: int):
        super().__init__(
            f"total_fee {expected} does not match the current price {actual} (fen); "
            "refresh the cart."
        )
        self.total_fee = actual


class OutOfStock(OrderError):
    def __init__(self, product: Product, wanted: int):
        super().__init__(f"Not enough stock for {product.name!r}: {product.stock} left.")
        self.product_id = product.pk
        self.wanted = wanted


class NotAShopper(OrderError):
    pass


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    quantity: int


def order_create(
    *,
    user: User,
    lines: list[OrderLine],
    client_ip: str,
    expected_total_fee: int | None = None,
) -> Order:
    """Price the order on the server, reserve stock and record it, all or nothing."""
    if not user.openid:
        raise NotAShopper("Only shoppers who logged in through WeChat can order.")
    merged = _merge_lines(lines)
    for attempt in range(3):
        try:
            return _order_create_once(
                user=user, lines=merged, client_ip=client_ip, expected_total_fee=expected_total_fee
            )
        except IntegrityError:
            # Only a clash of the random out_trade_no is worth another try.
            if attempt == 2:
                raise
            logger.warning("order number clash, retrying")
    raise AssertionError("unreachable")


def _merge_lines(lines: list[OrderLine]) -> "OrderedDict[int, int]":
    merged: OrderedDict[int, int] = OrderedDict()
    for line in lines:
        merged[line.product_id] = merged.get(line.product_id, 0) + line.quantity
    return merged


@transaction.atomic
def _order_create_once(
    *, user: User, lines: "OrderedDict[int, int]", client_ip: str, expected_total_fee: int | None
) -> Order:
    # Lock in primary-key order everywhere, so two orders sharing products cannot deadlock;
    # the lock makes the prices read here the ones charged and the stock checks exact.
    products = Product.objects.select_for_update().filter(pk__in=lines.keys()).order_by("pk")
    by_id = {product.pk: product for product in products}
    for product_id in lines:
        product = by_id.get(product_id)
        if product is None or not product.active:
            raise ProductUnavailable(f"Product {product_id} does not exist or is not on sale.")
    total_fee = sum(by_id[pid].price * quantity for pid, quantity in lines.items())
    if total_fee > MAX_TOTAL_FEE:
        raise ProductUnavailable("The order total is too large.")
    if expected_total_fee is not None and expected_total_fee != total_fee:
        raise TotalFeeMismatch(expected_total_fee, total_fee)
    for pid, quantity in lines.items():
        _stock_take(product=by_id[pid], quantity=quantity)

    now = timezone.now().replace(microsecond=0)
    order = Order.objects.create(
        out_trade_no=out_trade_no_new(now),
        user=user,
        openid=user.openid,
        body=_order_body([by_id[pid].name for pid in lines]),
        total_fee=total_fee,
        sign_type=settings.WECHAT_SIGN_TYPE,
        spbill_create_ip=client_ip,
        notify_url=settings.WECHAT_NOTIFY_URL,
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
        )
        for pid, quantity in lines.items()
    )
    # openid ties the order to the login's log line; out_trade_no to the notify's.
    logger.info(
        "order created out_trade_no=%s openid=%s total_fee=%s",
        order.out_trade_no,
        order.openid,
        total_fee,
    )
    return order


def _stock_take(*, product: Product, quantity: int) -> None:
    if product.stock is None:
        return
    # Conditional UPDATE: correct even where select_for_update is a no-op (SQLite).
    taken = Product.objects.filter(pk=product.pk, stock__gte=quantity).update(
        stock=F("stock") - quantity
    )
    if not taken:
        raise OutOfStock(product, quantity)


def out_trade_no_new(now: datetime) -> str:
    """``20261127114501`` + 18 random hex digits: 32 characters, unguessable, time-sortable.

    72 random bits make a clash between processes practically impossible; the unique
    constraint and ``order_create``'s retry cover the rest.
    """
    return compact_timestamp(now) + secrets.token_hex(9)


def _order_body(names: list[str]) -> str:
    body = names[0] if len(names) == 1 else f"{names[0]} 等{len(names)}件商品"
    return body if len(body) <= BODY_MAX_CHARS else body[: BODY_MAX_CHARS - 1] + "…"


def order_set_prepay(*, order: Order, prepay_id: str, expires_at: datetime) -> bool:
    """Store a fresh prepay_id, unless the order stopped being payable meanwhile."""
    updated = Order.objects.filter(pk=order.pk, status=Order.Status.UNPAID).update(
        prepay_id=prepay_id, prepay_expires_at=expires_at
    )
    order.prepay_id, order.prepay_expires_at = prepay_id, expires_at
    return bool(updated)


def order_mark_paid(*, order: Order, transaction_id: str, paid_at: datetime) -> bool:
    """unpaid → paid, once. Call inside the transaction that locked ``order``.

    The conditional UPDATE is what makes it exactly once (the row lock only orders
    concurrent notifies on PostgreSQL); the unique transaction_id is the anchor.
    """
    updated = Order.objects.filter(pk=order.pk, status=Order.Status.UNPAID).update(
        status=Order.Status.PAID, transaction_id=transaction_id, paid_at=paid_at
    )
    if updated:
        order.status, order.transaction_id, order.paid_at = (
            Order.Status.PAID,
            transaction_id,
            paid_at,
        )
        logger.info("order paid out_trade_no=%s", order.out_trade_no)
    return bool(updated)


def order_mark_refunded(*, order: Order) -> bool:
    """paid (or paid after closing) → refunded, once, when refunds gave back the total.

    The caller (``payments.refunds``) decides that the sum is complete, inside the
    transaction that locked ``order``; the conditional UPDATE makes it exactly once.
    """
    has_payment = Q(status=Order.Status.PAID) | Q(
        status=Order.Status.CLOSED, transaction_id__isnull=False
    )
    updated = Order.objects.filter(has_payment, pk=order.pk).update(status=Order.Status.REFUNDED)
    if updated:
        order.status = Order.Status.REFUNDED
        logger.info("order refunded out_trade_no=%s", order.out_trade_no)
    return bool(updated)


def order_flag(*, order: Order, reason: str, **fields) -> None:
    """Mark an order for staff attention; the same reason is recorded once."""
    reasons = [r for r in order.attention_reason.split("\n") if r]
    if reason not in reasons:
        reasons.append(reason)
    order.needs_attention = True
    order.attention_reason = "\n".join(reasons)
    for name, value in fields.items():
        setattr(order, name, value)
    order.save(update_fields=["needs_attention", "attention_reason", *fields])
    logger.warning("order flagged out_trade_no=%s reason=%s", order.out_trade_no, reason)


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
    for item in order.items.filter(product__stock__isnull=False).order_by("product_id"):
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
