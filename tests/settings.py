"""Test settings: the production settings, fed a fixed environment.

Only environment defaults are set here, so what is tested is exactly what
``shopsite/settings.py`` builds from the environment.
"""

import os

TEST_ENV = {
    "DJANGO_SECRET_KEY": "tests-only-secret-key-not-for-production",
    "WECHAT_APPID": "wxd930ea5d5a258f4f",
    "WECHAT_APP_SECRET": "test-app-secret-0123456789abcdef",
    "WECHAT_MCH_ID": "10000100",
    "WECHAT_MCH_KEY": "192006250b4c09247ec02edce69f6a2d",
    "WECHAT_NOTIFY_URL": "https://shop.example.com/payment/wxnotify",
    "WECHAT_API_BASE": "https://api.weixin.qq.com",
    "WECHAT_PAY_API_BASE": "https://api.mch.weixin.qq.com",
}
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)

from shopsite.settings import *  # noqa: E402, F403

# A file, not an in-memory database, so the end-to-end tests' gunicorn processes can open
# the same test database; one per test run.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"wxshop-test-{os.getpid()}.sqlite3")
    }
