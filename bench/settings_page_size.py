"""Bench only (bench/reads.py): our production settings with the API's page size taken from
``BENCH_PAGE_SIZE``, to show that a page's queries and plans do not depend on its size."""

import os

from shopsite.settings import *  # noqa: F403
from shopsite.settings import REST_FRAMEWORK

REST_FRAMEWORK = {**REST_FRAMEWORK, "PAGE_SIZE": int(os.environ["BENCH_PAGE_SIZE"])}
