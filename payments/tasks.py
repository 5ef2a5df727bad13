"""The payments app's tasks (shopsite/celery.py).

``import_yesterday_statement`` runs daily from CELERY_BEAT_SCHEDULE (10:30 Beijing time, once
WeChat has published the day's bill, docs/INVARIANTS.md §10). Idempotent: the same bill
imported again changes nothing, so a task delivered twice or run by hand as well
(``python manage.py import_statement``) does no harm.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from celery import shared_task

from core.times import shop_today
from payments.statements import statement_import
from wechat.pay_v2 import BillError
from wechat.pay_v3 import WxPayV3Error

logger = logging.getLogger(__name__)

# WeChat answers "Bill Creating" while it still makes the day's bill, and a passing "System
# Error" or 下载失败 (docs/protocol/wechat-pay-v2.md §14.8); v3 answers STATEMENT_CREATING,
# a passing SYSTEM_ERROR or none at all, or serves a file whose SHA1 is not the one it stated
# (docs/protocol/wechat-pay-v3.md §9, §10): ask again every half hour, as WeChat advises, up
# to 10 times (five hours after the 10:30 run).
BILL_RETRY_SECONDS = 30 * 60
BILL_RETRIES = 10


@shared_task(bind=True, max_retries=BILL_RETRIES, acks_late=True, ignore_result=True)
def import_yesterday_statement(self, bill_date: str = "") -> str:
    """Import yesterday's (Beijing) trade bill, or ``bill_date`` (ISO) on a retry.

    A bill WeChat is still making, or a passing failure of its bill service (v3: any
    failure WeChat calls retryable, a damaged download included), is asked for again later
    (the same day, never recorded as empty); any other failure raises and is logged by the
    worker, and the next run or the command tries again."""
    day = date.fromisoformat(bill_date) if bill_date else shop_today() - timedelta(days=1)
    try:
        return statement_import(bill_date=day).outcome
    except (BillError, WxPayV3Error) as exc:
        if not exc.retryable or self.request.retries >= self.max_retries:
            raise
        logger.warning(
            "statement of %s: %s; asking again in %d s (retry %d of %d)",
            day,
            exc,
            BILL_RETRY_SECONDS,
            self.request.retries + 1,
            self.max_retries,
        )
        # The day goes with the retry: one that runs after midnight still asks for it.
        raise self.retry(
            exc=exc, countdown=BILL_RETRY_SECONDS, kwargs={"bill_date": day.isoformat()}
        ) from exc
