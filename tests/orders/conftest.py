import importlib
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.urls import clear_url_caches
from django.utils import timezone
from PIL import Image

import shopsite.urls
from orders.fulfilment import order_ship
from orders.models import Order, OrderItem, Product
from tests.factories import make_order, make_paid_order
from wechat.pay_v2 import BEIJING


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path) -> Path:
    """Uploaded and generated pictures go to a temporary MEDIA_ROOT, never into the repo."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def png() -> bytes:
    """A real 8 x 8 PNG, as a phone or a camera would hand one over."""
    out = BytesIO()
    Image.new("RGB", (8, 8), (200, 80, 40)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def pictured(products, png) -> Product:
    """The tea, with a picture stored through the default storage."""
    tea = products["tea"]
    tea.image.save("tea.png", ContentFile(png), save=True)
    return tea


@pytest.fixture
def media_served(settings):
    """SERVE_MEDIA on: shopsite/urls.py read again, as a process started with it would."""
    served = settings.SERVE_MEDIA
    settings.SERVE_MEDIA = True
    importlib.reload(shopsite.urls)
    clear_url_caches()
    yield
    settings.SERVE_MEDIA = served
    importlib.reload(shopsite.urls)
    clear_url_caches()


# -- fulfilment (tests/orders/test_fulfilment.py, test_ship_orders_command.py,
#    test_admin_shipping.py) ------------------------------------------------------------


@pytest.fixture
def address() -> dict[str, str]:
    """A delivery address as wx.chooseAddress hands it over (snake_case keys)."""
    return {
        "user_name": "张三",
        "tel_number": "13812345678",
        "province_name": "广东省",
        "city_name": "广州市",
        "county_name": "海珠区",
        "detail_info": "新港中路397号",
        "postal_code": "510000",
    }


@pytest.fixture
def voucher(db) -> Product:
    """A virtual product: nothing ships, so an order of only vouchers needs no address."""
    return Product.objects.create(
        name="Tea tasting e-voucher", price=9900, stock=None, requires_shipping=False
    )


@pytest.fixture
def to_ship(shopper, products, address) -> Order:
    """A paid order (through a notify) with an address and a remark, not shipped yet."""
    return make_paid_order(shopper, products, address=address, remark="Please ring twice")


@pytest.fixture
def shipped(to_ship) -> Order:
    """``to_ship`` sent by express: SF, tracking number SF1234567890."""
    order_ship(
        order=to_ship, logistics_type="express", express_company="SF", tracking_no="SF1234567890"
    )
    return Order.objects.get(pk=to_ship.pk)


@pytest.fixture
def paid_orders(shopper, products, address):
    """``paid_orders(count, first=1)``: paid, unshipped orders, each with its own
    transaction id, paid ``first``, ``first + 1``, … hours ago."""

    def build(count: int, first: int = 1) -> list[Order]:
        return [
            make_order(
                shopper,
                products,
                n=n,
                status=Order.Status.PAID,
                transaction_id=f"42{n:030d}",
                paid_at=timezone.now() - timedelta(hours=n),
                address=address,
            )
            for n in range(first, first + count)
        ]

    return build


# -- ordering and exporting (test_order_create_limits.py, test_admin_export.py) ------------------


@pytest.fixture
def jar(db) -> Product:
    """A cheap product with plenty of stock: only the caps on unpaid orders limit it."""
    return Product.objects.create(name="Tea jar", price=100, stock=1000)


def _november(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=BEIJING)


@pytest.fixture
def november(shopper, products) -> dict[str, Order]:
    """Orders created on the 1st (00:10 Beijing = 16:10 UTC the day before), 15th, 30th."""
    first = make_order(shopper, products, n=1, created_at=_november(1, 0), total_fee=5)
    first.created_at = _november(1, 0).replace(minute=10)
    first.save(update_fields=["created_at"])
    mid = make_order(
        shopper,
        products,
        n=2,
        created_at=_november(15),
        status=Order.Status.PAID,
        transaction_id="4200000483202001042069747825",
        paid_at=_november(15, 13),
        total_fee=123456,
        needs_attention=True,
    )
    OrderItem.objects.create(
        order=mid, product=products["cup"], product_name="Tea cup", unit_price=1200, quantity=3
    )
    last = make_order(shopper, products, n=3, created_at=_november(30, 23))
    outside = make_order(shopper, products, n=4, created_at=_november(1, 0) - timedelta(minutes=1))
    return {"first": first, "mid": mid, "last": last, "outside": outside}
