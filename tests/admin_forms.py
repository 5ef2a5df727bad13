"""Admin pages as a browser submits them: a form read back from the page, and staff
with exactly the permissions a test names."""

from html.parser import HTMLParser

from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import User
from orders.models import Order, Product
from tests.factories import get_ok, make_order, notify_body, post_notify, reload, staff_client

CHANGELIST = "/admin/orders/order/"


class FormFields(HTMLParser):
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
    parser = FormFields(form_id)
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
    parser = FormFields("refund_form")
    parser.feed(get_ok(client, refund_page(order)))
    return {**parser.data, **fields}


def paid_other(shopper, products) -> Order:
    """A second paid order (its own WeChat transaction id)."""
    order = make_order(shopper, products, n=1)
    post_notify(notify_body(order, transaction_id="4200000483202001042069747826"))
    return reload(order)


def action_choices(client: Client) -> str:
    return get_ok(client, CHANGELIST)
