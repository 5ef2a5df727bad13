"""No secret reaches the logs during a whole purchase, even at DEBUG (docs/INVARIANTS.md §6.3)."""

import pytest

from accounts.models import User
from demo.miniprogram import MiniProgram
from demo.stack import ShopServer
from tests.e2e.conftest import ACCOUNT, SERVER_ENV, database_url

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_purchase_logged_at_debug_shows_no_secret(sim, logs, fresh_sim, tea):
    log_path = logs / "gunicorn-debug.log"
    shop = ShopServer(
        sim, database_url(), log_path=log_path, extra_env={**SERVER_ENV, "LOG_LEVEL": "DEBUG"}
    ).start()
    try:
        phone = MiniProgram(shop.url, fresh_sim)
        phone.login()
        order = phone.order([{"product_id": tea.pk, "quantity": 1}])
        phone.request_payment(order["payment"])
        assert phone.wait_for_status(order["out_trade_no"])["status"] == "paid"
        phone.call("GET", "/orders")
    finally:
        shop.stop()

    text = log_path.read_text()
    session_key = User.objects.get(openid=phone.openid).session_key
    assert session_key and phone.openid in text  # the log is real and has the flow in it
    assert "order paid" in text and "wechat.pay_v2" in text
    for secret in (ACCOUNT.mch_key, ACCOUNT.app_secret, session_key, phone.token):
        assert secret not in text
    # Personal data neither, even at DEBUG (docs/INVARIANTS.md §8).
    for personal in (phone.address["tel_number"], phone.address["detail_info"]):
        assert personal not in text
