"""Queries of one peer notify, counted like ours (run in a subprocess with the peer's settings).

``python -m bench.peer_probe`` with PYTHONPATH=bench/peer and the peer's environment; prints
JSON ``{"queries": n, "sql": [...], "reply": "..."}``. Seeds its own order first.
"""

from __future__ import annotations

import json
import os
import secrets
import sys

from bench.config import ACCOUNT
from bench.wire import Payment, notify_body


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peersite.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.ALLOWED_HOSTS.append("testserver")
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from shop.models import Order

    client, runs = Client(), []
    for _ in range(2):  # cold, then warm
        txid = "4200" + secrets.token_hex(10)
        payment = Payment("BP" + secrets.token_hex(12), 4500, "o-peer", txid)
        Order.objects.create(out_trade_no=payment.out_trade_no, total_fee=payment.total_fee)
        body = notify_body(payment, ACCOUNT)
        with CaptureQueriesContext(connection) as ctx:
            response = client.post("/payment/wxnotify", body, content_type="text/xml")
        sql = [q["sql"] for q in ctx.captured_queries]
        runs.append({"queries": len(sql), "sql": sql, "reply": response.content.decode()})
    print(json.dumps(runs[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
