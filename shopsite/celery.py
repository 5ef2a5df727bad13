"""The task queue (Celery; docs/INVARIANTS.md §8): uploads of shipments to WeChat, their
retries, subscribe messages and the periodic sweeps.

Start a worker and the scheduler beside gunicorn (docs/DEPLOY.md):

    celery -A shopsite worker --loglevel INFO
    celery -A shopsite beat --loglevel INFO

Tasks are found in each app's ``tasks.py``. Every task is idempotent and is enqueued after
the commit that made its work (``delay_on_commit``); what is pending is also in the
database, so a sweep re-enqueues anything a broker outage lost.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")

app = Celery("shopsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
