"""What orders' services answer: a result the caller branches on (OrderRequest), refusals
that carry their HTTP meaning (OrderError is a DomainError), and one definition of an
order WeChat took money for (Order.objects.with_payment() and Order.has_payment)."""

import pytest
from django.utils import timezone

from core.api import exception_handler
from core.errors import DomainError
from orders.models import Order
from orders.services import (
    IdempotencyKeyReused,
    NotAShopper,
    OrderError,
    OrderLine,
    OrderRequest,
    OutOfStock,
    ProductUnavailable,
    TotalFeeMismatch,
    UnpaidLimitReached,
    order_create,
)
from tests.factories import DELIVERY, TRANSACTION_ID, make_order

pytestmark = pytest.mark.django_db


def test_the_service_says_whether_it_made_the_order(shopper, products):
    lines = [OrderLine(products["tea"].pk, 1)]

    first = order_create(
        user=shopper, lines=lines, client_ip="127.0.0.1", address=DELIVERY, idempotency_key="k"
    )
    again = order_create(
        user=shopper, lines=lines, client_ip="127.0.0.1", address=DELIVERY, idempotency_key="k"
    )

    assert isinstance(first, OrderRequest)
    assert (first.created, again.created) == (True, False)
    assert again.order.pk == first.order.pk
    assert not hasattr(again.order, "replayed")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ProductUnavailable, 400),
        (TotalFeeMismatch, 409),
        (OutOfStock, 409),
        (NotAShopper, 403),
        (UnpaidLimitReached, 409),
        (IdempotencyKeyReused, 409),
    ],
)
def test_every_order_error_is_a_domain_error_with_its_status(error, status):
    assert issubclass(error, DomainError)
    assert error.status_code == status


def test_an_order_error_added_later_answers_400_rather_than_500():
    class AddressMissing(OrderError):
        pass

    response = exception_handler(AddressMissing("An address is needed."), {})

    assert (response.status_code, response.data) == (400, {"detail": "An address is needed."})


@pytest.mark.parametrize(
    ("status", "transaction_id", "has_payment"),
    [
        ("unpaid", None, False),
        ("paid", TRANSACTION_ID, True),
        ("closed", None, False),
        ("closed", TRANSACTION_ID, True),  # paid after closing: flagged, refundable
        ("refunded", TRANSACTION_ID, False),
    ],
)
def test_with_payment_and_has_payment_agree(shopper, products, status, transaction_id, has_payment):
    paid_at = timezone.now() if transaction_id else None
    order = make_order(
        shopper, products, status=status, transaction_id=transaction_id, paid_at=paid_at
    )

    assert order.has_payment is has_payment
    assert list(Order.objects.with_payment()) == ([order] if has_payment else [])
