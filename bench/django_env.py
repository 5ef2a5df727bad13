"""Django inside the benchmark process, on the bench database, configured like the server.

Used to seed rows with the ORM and to count queries with the test client.
"""

from __future__ import annotations

import os

from bench.config import ACCOUNT, OUR_DB, SECRET_KEY, database_url


def setup(sim_url: str, shop_url: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="shopsite.settings",
        DJANGO_SECRET_KEY=SECRET_KEY,
        # "testserver" for the test client.
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        DATABASE_URL=database_url(OUR_DB),
        WECHAT_APPID=ACCOUNT.appid,
        WECHAT_APP_SECRET=ACCOUNT.app_secret,
        WECHAT_MCH_ID=ACCOUNT.mch_id,
        WECHAT_MCH_KEY=ACCOUNT.mch_key,
        WECHAT_SIGN_TYPE="MD5",
        WECHAT_API_BASE=sim_url,
        WECHAT_PAY_API_BASE=sim_url,
        WECHAT_NOTIFY_URL=f"{shop_url}/payment/wxnotify",
        LOG_LEVEL="WARNING",
    )
    import warnings

    import django

    # WhiteNoise warns that STATIC_ROOT was never collected; irrelevant to the API.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    django.setup()


def close() -> None:
    from django.conf import settings

    if settings.configured:
        from django.db import connections

        connections.close_all()


def use_database(name: str) -> None:
    """Point this process's default connection at another bench database (growth)."""
    from django.db import connections

    connection = connections["default"]
    connection.close()
    connection.settings_dict["NAME"] = name
