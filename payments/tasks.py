"""The payments app's tasks (shopsite/celery.py).

``import_yesterday_statement`` runs daily from CELERY_BEAT_SCHEDULE (10:30 Beijing time, once
WeChat has published the day's bill, docs/INVARIANTS.md §10). Idempotent: the same bill
imported again changes nothing, so a task delivered twice or run by hand as well
(``python manage.py import_statement``) does no harm.
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from core.times import shop_today
from payments.statements import statement_import


@shared_task(ignore_result=True)
def import_yesterday_statement() -> str:
    """Import yesterday's (Beijing) trade bill; a failure raises and is logged by the
    worker, and the next run or the command tries again."""
    return statement_import(bill_date=shop_today() - timedelta(days=1)).outcome
