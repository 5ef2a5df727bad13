"""The demo's and the end-to-end harness's v3 wiring (demo/stack.py), as far as the
simulator goes: the simulator process writes its v3 files, and a shop started with
``pay_version="v3"`` gets settings that work against it."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

from pathlib import Path

import pytest
import requests

from demo.stack import ShopServer, Simulator, WeChatAccount
from wechat.pay_v3 import KeyRing, WxPayV3Client, WxPayV3Config, load_private_key

ACCOUNT = WeChatAccount()


@pytest.fixture(scope="module")
def stack_sim():
    simulator = Simulator(ACCOUNT).start()  # public-key mode, as the demo runs it
    yield simulator
    simulator.stop()


def test_v3_shop_env_carries_the_simulators_files(stack_sim):
    env = ShopServer(stack_sim, "sqlite:///unused.sqlite3", pay_version="v3").env()

    assert env["WECHAT_PAY_VERSION"] == "v3"
    assert env["WECHAT_API_V3_KEY"] == ACCOUNT.apiv3_key
    assert Path(env["WECHAT_MCH_PRIVATE_KEY_PATH"]).name == "apiclient_key.pem"
    assert env["WECHAT_MCH_CERT_SERIAL"] == stack_sim.v3["merchant_serial"]
    assert env["WECHAT_PAY_PUBLIC_KEY_ID"].startswith("PUB_KEY_ID_")
    assert env["WECHAT_PAY_API_BASE"] == stack_sim.url
    assert env["WECHAT_NOTIFY_URL"].endswith("/payment/wxnotify")  # v3 derives its own


def test_v2_shop_env_is_unchanged(stack_sim):
    env = ShopServer(stack_sim, "sqlite:///unused.sqlite3").env()
    assert "WECHAT_PAY_VERSION" not in env and "WECHAT_API_V3_KEY" not in env


def test_the_settings_pay_through_the_simulator(stack_sim):
    settings = stack_sim.v3_settings()
    client = WxPayV3Client(WxPayV3Config(
        appid=ACCOUNT.appid, mchid=ACCOUNT.mch_id,
        merchant_serial_no=settings["WECHAT_MCH_CERT_SERIAL"],
        private_key=load_private_key(Path(settings["WECHAT_MCH_PRIVATE_KEY_PATH"]).read_bytes()),
        apiv3_key=settings["WECHAT_API_V3_KEY"],
        keyring=KeyRing.from_pem(
            public_key_pem=Path(settings["WECHAT_PAY_PUBLIC_KEY_PATH"]).read_bytes(),
            public_key_id=settings["WECHAT_PAY_PUBLIC_KEY_ID"]),
        api_base=stack_sim.url,
    ))
    prepay_id = client.jsapi_prepay(out_trade_no="T20250101000002", description="测试",
                                    total=1, openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
                                    notify_url="http://127.0.0.1:9/payment/v3/wxnotify").prepay_id
    paid = requests.post(stack_sim.url + "/sim/pay",
                         json={"payment": client.jsapi_params(prepay_id)}, timeout=5)
    assert paid.status_code == 200, paid.text
    assert stack_sim.control("GET", "/sim/trades/T20250101000002").json()["state"] == "SUCCESS"
    client.close()


def test_certificate_mode_settings_leave_out_the_public_key():
    simulator = Simulator(ACCOUNT, v3_keys="certificate").start()
    try:
        assert "WECHAT_PAY_PUBLIC_KEY_PATH" not in simulator.v3_settings()
        assert simulator.v3["mode"] == "certificate"
    finally:
        simulator.stop()
