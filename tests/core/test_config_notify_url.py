"""Where WeChat reports an order's payment, by the API the order was placed with."""

from core.config import pay_notify_url


def test_v2_is_the_setting(settings):
    settings.WECHAT_NOTIFY_URL = "https://shop.example.com/payment/wxnotify"
    assert pay_notify_url("v2") == "https://shop.example.com/payment/wxnotify"


def test_v3_defaults_to_the_v3_path_beside_it(settings):
    settings.WECHAT_NOTIFY_URL = "https://shop.example.com/payment/wxnotify"
    settings.WECHAT_V3_NOTIFY_URL = ""
    assert pay_notify_url("v3") == "https://shop.example.com/payment/v3/wxnotify"


def test_v3_setting_wins(settings):
    settings.WECHAT_NOTIFY_URL = "https://shop.example.com/payment/wxnotify"
    settings.WECHAT_V3_NOTIFY_URL = "https://pay.example.com/v3/notify"
    assert pay_notify_url("v3") == "https://pay.example.com/v3/notify"


def test_nothing_configured_is_empty(settings):
    settings.WECHAT_NOTIFY_URL = settings.WECHAT_V3_NOTIFY_URL = ""
    assert pay_notify_url("v3") == ""
