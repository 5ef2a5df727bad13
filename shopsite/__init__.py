# The Celery app is loaded with Django, so tasks' delay_on_commit finds it (shopsite/celery.py).
from shopsite.celery import app as celery_app

__all__ = ["celery_app"]
