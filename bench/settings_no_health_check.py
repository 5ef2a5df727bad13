"""Experiment only: our production settings with Django's connection health check off
(``CONN_HEALTH_CHECKS``), to measure what its per-request ``SELECT 1`` costs."""

from shopsite.settings import *  # noqa: F403
from shopsite.settings import DATABASES

DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
