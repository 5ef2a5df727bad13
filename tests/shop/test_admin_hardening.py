"""Admin forms that stay right when the page is old, submitted twice, or typed oddly:
refunds, product stock, an order's flag, and who may do what (RELIABILITY: admin)."""

import threading
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client

from accounts.models import User
from orders.admin import OrderAdmin
from orders.models import Order, Product
from orders.services import OrderLine, order_create, order_flag
from payments.models import Refund
from payments.refunds import RefundError, refund_create
from tests.factories import (
    get_ok,
    make_order,
    make_shopper,
    notify_body,
    post_notify,
    reload,
    staff_client,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("refund_certificate")]

CHANGELIST = "/admin/orders/order/"
REFUND = "/secapi/pay/refund"


class _FormFields(HTMLParser):
    """What a browser would submit from the form with ``id``: its named fields, checkboxes
    only when ticked."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.data: dict[str, str] = {}
        self._textarea = ""
        self._select = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
            return
        name = a.get("name")
        if not self.inside or (not name and tag != "option"):
            return
        if tag == "input":
            kind = a.get("type", "text")
            if kind in ("submit", "button", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.data[name] = a.get("value") or ("on" if kind == "checkbox" else "")
        elif tag == "textarea":
            self._textarea = name
            self.data[name] = ""
        elif tag == "select":
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            # Browsers drop the newline that follows <textarea>.
            if self._textarea:
                self.data[self._textarea] = self.data[self._textarea].removeprefix("\n")
            self._textarea = ""
        elif tag == "select":
            self._select = ""

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data


def form_data(client: Client, url: str, form_id: str) -> dict[str, str]:
    """Open the page as a browser would and read back its form."""
    parser = _FormFields(form_id)
    parser.feed(get_ok(client, url))
    assert parser.data, f"no form {form_id} at {url}"
    return parser.data


def staff_with(*codenames: str) -> Client:
    user = User.objects.create_user(
        f"clerk-{'-'.join(codenames)}", password="a-long-test-password", is_staff=True
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return staff_client(user)


def refund_page(order: Order) -> str:
    return f"/admin/orders/order/{order.pk}/refund/"


def order_page(order: Order) -> str:
    return f"/admin/orders/order/{order.pk}/change/"


def product_page(product: Product) -> str:
    return f"/admin/orders/product/{product.pk}/change/"


def refund_form(client: Client, order: Order, **fields) -> dict[str, str]:
    parser = _FormFields("refund_form")
    parser.feed(get_ok(client, refund_page(order)))
    return {**parser.data, **fields}


def paid_other(shopper, products) -> Order:
    """A second paid order (its own WeChat transaction id)."""
    order = make_order(shopper, products, n=1)
    post_notify(notify_body(order, transaction_id="4200000483202001042069747826"))
    return reload(order)


def action_choices(client: Client) -> str:
    return get_ok(client, CHANGELIST)


# -- 1. one confirmation page, at most one refund ------------------------------------------------


class TestRefundSubmittedTwice:
    def test_the_page_carries_a_one_time_key(self, boss_client, paid, wxpay):
        first = refund_form(boss_client, paid)
        second = refund_form(boss_client, paid)

        assert len(first["request_key"]) >= 32
        assert first["request_key"] != second["request_key"]

    def test_the_same_form_posted_twice_refunds_once(self, boss_client, paid, wxpay):
        data = refund_form(boss_client, paid, amount="12.30")

        first = boss_client.post(refund_page(paid), data)
        second = boss_client.post(refund_page(paid), data, follow=True)

        assert first.status_code == 302
        refund = Refund.objects.get()
        assert (refund.refund_fee, refund.status) == (1230, Refund.Status.PROCESSING)
        assert refund.request_key == data["request_key"]
        assert len(wxpay.calls(REFUND)) == 1
        text = second.content.decode()
        assert "already submitted" in text
        assert refund.out_refund_no in text

    def test_a_resubmitted_form_changed_meanwhile_still_refunds_once(
        self, boss_client, paid, wxpay
    ):
        data = refund_form(boss_client, paid, amount="10.00")
        boss_client.post(refund_page(paid), data)

        boss_client.post(refund_page(paid), {**data, "amount": "20.00"})

        assert Refund.objects.get().refund_fee == 1000
        assert len(wxpay.calls(REFUND)) == 1

    def test_a_pending_refund_is_not_sent_again_by_the_resubmitted_form(
        self, boss_client, paid, wxpay
    ):
        wxpay.path_error_queue[REFUND] = ["SYSTEMERROR"]
        data = refund_form(boss_client, paid, amount="45.00")
        boss_client.post(refund_page(paid), data)

        response = boss_client.post(refund_page(paid), data, follow=True)

        assert Refund.objects.get().status == Refund.Status.PENDING
        assert len(wxpay.calls(REFUND)) == 1  # reconciliation sends it again, once
        assert "already submitted" in response.content.decode()

    def test_a_form_without_its_key_refunds_nothing(self, boss_client, paid, wxpay):
        data = refund_form(boss_client, paid)
        del data["request_key"]

        response = boss_client.post(refund_page(paid), data)

        assert response.status_code == 200
        assert "open it again" in response.content.decode()
        assert not Refund.objects.exists()
        assert wxpay.requests_seen == []

    def test_the_service_returns_the_refund_already_made_with_a_key(self, paid, wxpay):
        first = refund_create(order=paid, refund_fee=100, reason="", request_key="k" * 40)
        again = refund_create(order=paid, refund_fee=4500, reason="", request_key="k" * 40)

        assert again.pk == first.pk
        assert Refund.objects.count() == 1

    def test_the_service_refuses_a_key_used_for_another_order(self, paid, shopper, products, wxpay):
        other = paid_other(shopper, products)
        refund_create(order=paid, refund_fee=100, reason="", request_key="k" * 40)

        with pytest.raises(RefundError, match="another order"):
            refund_create(order=other, refund_fee=100, reason="", request_key="k" * 40)
        assert Refund.objects.count() == 1


def _at_once(count: int, work) -> list:
    barrier = threading.Barrier(count)
    results: list = []

    def run(n):
        try:
            barrier.wait()
            results.append(work(n))
        except Exception as exc:  # the test asserts on what came out
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_posts_of_one_form_at_once_refund_once(paid, boss, wxpay):
    clients = [staff_client(boss), staff_client(boss)]
    data = refund_form(clients[0], paid, amount="45.00")

    statuses = _at_once(2, lambda n: clients[n].post(refund_page(paid), data).status_code)

    assert statuses == [302, 302]
    assert Refund.objects.count() == 1
    assert len(wxpay.calls(REFUND)) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_key_for_two_orders_at_once_makes_one_refund(paid, shopper, products, wxpay):
    other = paid_other(shopper, products)
    orders = [paid, other]

    def refund(n):
        return refund_create(order=orders[n], refund_fee=100, reason="", request_key="k" * 40)

    results = _at_once(2, refund)

    made = [r for r in results if isinstance(r, Refund)]
    refused = [r for r in results if isinstance(r, RefundError)]
    assert (len(made), len(refused)) == (1, 1)
    assert "another order" in str(refused[0])
    assert Refund.objects.count() == 1


# -- 6. a reason WeChat's XML cannot carry ---------------------------------------------------


class TestRefundReason:
    def test_a_control_character_is_a_form_error(self, boss_client, paid, wxpay):
        data = refund_form(boss_client, paid, amount="1.00", reason="Broken\x1bcup")

        response = boss_client.post(refund_page(paid), data)

        assert response.status_code == 200
        assert "control characters" in response.content.decode()
        assert not Refund.objects.exists()
        assert wxpay.requests_seen == []

    @pytest.mark.parametrize("reason", ["\x1b", "a\x00b", "tab\x0bbed", "\ufffe"])
    def test_the_service_refuses_it_too(self, paid, wxpay, reason):
        with pytest.raises(RefundError, match="control characters"):
            refund_create(order=paid, refund_fee=100, reason=reason)
        assert not Refund.objects.exists()

    def test_tabs_and_newlines_are_fine(self, paid, wxpay):
        assert refund_create(order=paid, refund_fee=100, reason="a\tb\nc").reason == "a\tb\nc"


# -- 4. refunding needs add_refund and change_order ----------------------------------------


class TestRefundPermission:
    def test_add_refund_alone_is_not_enough(self, paid, wxpay):
        clerk = staff_with("add_refund")

        assert clerk.get(refund_page(paid)).status_code == 403
        assert clerk.post(refund_page(paid), {"amount": "1"}).status_code == 403
        assert not Refund.objects.exists()

    def test_viewing_orders_does_not_offer_the_action(self, paid, wxpay):
        clerk = staff_with("add_refund", "view_order")

        assert 'value="refund_action"' not in action_choices(clerk)
        assert "refund-link" not in get_ok(clerk, order_page(paid))
        assert clerk.get(refund_page(paid)).status_code == 403
        response = clerk.post(
            CHANGELIST, {"action": "refund_action", "_selected_action": [paid.pk]}
        )
        assert response.status_code != 302 or "/refund/" not in response["Location"]
        assert not Refund.objects.exists()

    def test_change_order_alone_is_not_enough(self, paid, wxpay):
        clerk = staff_with("change_order")

        assert 'value="refund_action"' not in action_choices(clerk)
        assert clerk.get(refund_page(paid)).status_code == 403

    def test_both_permissions_refund(self, paid, wxpay):
        clerk = staff_with("add_refund", "change_order")

        assert 'value="refund_action"' in action_choices(clerk)
        data = refund_form(clerk, paid, amount="1.00")
        assert clerk.post(refund_page(paid), data).status_code == 302
        assert Refund.objects.get().refund_fee == 100


# -- 5. "Ask WeChat now" changes state: it needs change permission -----------------------------


class TestReconcilePermission:
    def test_view_only_staff_cannot_ask_wechat(self, shopper, products, wxpay):
        expired = make_order(shopper, products, n=60, prepay_id="wx1")
        clerk = staff_with("view_order")

        assert 'value="reconcile_action"' not in action_choices(clerk)
        clerk.post(CHANGELIST, {"action": "reconcile_action", "_selected_action": [expired.pk]})

        assert wxpay.requests_seen == []
        assert reload(expired).status == Order.Status.UNPAID

    def test_change_permission_may(self, shopper, products, wxpay):
        expired = make_order(shopper, products, n=60, prepay_id="wx1")
        wxpay.path_fields["/pay/orderquery"] = {"trade_state": "NOTPAY"}
        clerk = staff_with("change_order")

        assert 'value="reconcile_action"' in action_choices(clerk)
        clerk.post(CHANGELIST, {"action": "reconcile_action", "_selected_action": [expired.pk]})

        assert reload(expired).status == Order.Status.CLOSED


# -- 3. the order form saves only the acknowledgment ------------------------------------------


def during_save(monkeypatch, event) -> None:
    """Run ``event`` just after the admin has read the order to save a form: a write that
    commits while the admin holds its copy of the row."""
    read = OrderAdmin.get_object

    def get_object(self, request, object_id, from_field=None):
        order = read(self, request, object_id, from_field)
        if request.method == "POST":
            event()
        return order

    monkeypatch.setattr(OrderAdmin, "get_object", get_object)


class TestOrderForm:
    def test_a_payment_during_the_edit_is_kept(self, boss_client, shopper, products):
        order = make_order(shopper, products)
        data = form_data(boss_client, order_page(order), "order_form")
        post_notify(notify_body(order))  # WeChat pays while the page is open

        response = boss_client.post(order_page(order), data)

        assert response.status_code == 302
        saved = reload(order)
        assert saved.status == Order.Status.PAID
        assert saved.transaction_id and saved.paid_at

    def test_a_payment_while_the_admin_saves_is_kept(
        self, boss_client, shopper, products, monkeypatch
    ):
        order = make_order(shopper, products)
        data = form_data(boss_client, order_page(order), "order_form")
        during_save(monkeypatch, lambda: post_notify(notify_body(order)))

        response = boss_client.post(order_page(order), data)

        assert response.status_code == 302
        saved = reload(order)
        assert saved.status == Order.Status.PAID
        assert saved.transaction_id and saved.paid_at

    def test_a_flag_raised_while_the_admin_saves_is_kept(
        self, boss_client, shopper, products, monkeypatch
    ):
        order = make_order(shopper, products, needs_attention=True, attention_reason="Paid less")
        data = form_data(boss_client, order_page(order), "order_form")
        del data["needs_attention"]
        during_save(monkeypatch, lambda: order_flag(order=reload(order), reason="Second payment"))

        boss_client.post(order_page(order), data)

        saved = reload(order)
        assert saved.needs_attention
        assert saved.attention_reason == "Paid less\nSecond payment"

    def test_unticking_clears_the_flag_and_keeps_the_reason(self, boss_client, shopper, products):
        order = make_order(shopper, products, needs_attention=True, attention_reason="Paid less")
        data = form_data(boss_client, order_page(order), "order_form")
        del data["needs_attention"]

        response = boss_client.post(order_page(order), data)

        assert response.status_code == 302
        saved = reload(order)
        assert (saved.needs_attention, saved.attention_reason) == (False, "Paid less")

    def test_a_reason_raised_during_the_edit_keeps_the_flag(self, boss_client, shopper, products):
        order = make_order(shopper, products, needs_attention=True, attention_reason="Paid less")
        data = form_data(boss_client, order_page(order), "order_form")
        order_flag(order=reload(order), reason="Second payment")
        del data["needs_attention"]

        response = boss_client.post(order_page(order), data, follow=True)

        saved = reload(order)
        assert saved.needs_attention
        assert saved.attention_reason == "Paid less\nSecond payment"
        assert "raised while" in response.content.decode()
        assert "Second payment" in response.content.decode()

    def test_the_reason_is_not_editable(self, boss_client, shopper, products):
        order = make_order(shopper, products, needs_attention=True, attention_reason="Paid less")
        data = form_data(boss_client, order_page(order), "order_form")

        assert "attention_reason" not in data
        boss_client.post(order_page(order), {**data, "attention_reason": "nothing"})

        assert reload(order).attention_reason == "Paid less"


# -- 2. product stock composes with reservations; names XML can carry -------------------------


def reserve(product: Product, quantity: int) -> None:
    order_create(
        user=make_shopper(), lines=[OrderLine(product.pk, quantity)], client_ip="127.0.0.1"
    )


class TestProductForm:
    def test_an_adjustment_adds_to_the_stock_at_saving_time(self, boss_client, products):
        tea = products["tea"]  # 10 units
        data = form_data(boss_client, product_page(tea), "product_form")
        reserve(tea, 2)  # a shopper orders while the page is open

        response = boss_client.post(
            product_page(tea), {**data, "stock_change": "5", "name": "Oolong tea 500g"}
        )

        assert response.status_code == 302
        saved = reload(tea)
        assert (saved.stock, saved.name) == (8 + 5, "Oolong tea 500g")

    def test_saving_without_an_adjustment_leaves_reservations_alone(self, boss_client, products):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")
        reserve(tea, 3)

        boss_client.post(product_page(tea), {**data, "price": "4800"})

        assert (reload(tea).stock, reload(tea).price) == (7, 4800)

    def test_removing_units_stops_at_what_is_left(self, boss_client, products):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")
        reserve(tea, 8)

        response = boss_client.post(product_page(tea), {**data, "stock_change": "-3"})

        assert response.status_code == 200
        assert "at most 2" in response.content.decode()
        assert reload(tea).stock == 2

    def test_removing_units(self, boss_client, products):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")

        boss_client.post(product_page(tea), {**data, "stock_change": "-4"})

        assert reload(tea).stock == 6

    def test_stock_can_become_unlimited(self, boss_client, products):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")

        boss_client.post(product_page(tea), {**data, "unlimited": "on"})

        assert reload(tea).stock is None

    def test_unlimited_stock_can_become_a_number(self, boss_client, products):
        cup = products["cup"]  # unlimited
        data = form_data(boss_client, product_page(cup), "product_form")
        assert data["unlimited"] == "on"
        del data["unlimited"]

        boss_client.post(product_page(cup), {**data, "stock_change": "7"})

        assert reload(cup).stock == 7

    def test_unlimited_to_a_number_needs_the_number(self, boss_client, products):
        cup = products["cup"]
        data = form_data(boss_client, product_page(cup), "product_form")
        del data["unlimited"]

        response = boss_client.post(product_page(cup), data)

        assert response.status_code == 200
        assert reload(cup).stock is None

    def test_the_stock_is_shown_but_not_typed(self, boss_client, products):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")

        assert "stock" not in data
        boss_client.post(product_page(tea), {**data, "stock": "1000"})

        assert reload(tea).stock == 10

    def test_a_new_product_gets_its_stock(self, boss_client, db):
        data = form_data(boss_client, "/admin/orders/product/add/", "product_form")

        boss_client.post(
            "/admin/orders/product/add/",
            {**data, "name": "Kettle", "price": "9900", "stock": "3", "active": "on"},
        )

        assert Product.objects.get(name="Kettle").stock == 3

    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("Tea\x00", "Null characters are not allowed"),  # Django's own check
            ("Tea\x01cup", "control characters"),
            ("Tea\x0bcup", "control characters"),
            ("Tea\x1fcup", "control characters"),
            ("\x0cTea\x0c pot", "control characters"),
        ],
    )
    def test_a_name_xml_cannot_carry_is_refused(self, boss_client, products, name, message):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")

        response = boss_client.post(product_page(tea), {**data, "name": name})

        assert response.status_code == 200
        assert message in response.content.decode()
        assert reload(tea).name == "Oolong tea 250g"

    def test_a_new_product_with_such_a_name_is_refused(self, boss_client, db):
        data = form_data(boss_client, "/admin/orders/product/add/", "product_form")

        response = boss_client.post(
            "/admin/orders/product/add/", {**data, "name": "Tea\x07", "price": "100"}
        )

        assert response.status_code == 200
        assert not Product.objects.exists()
