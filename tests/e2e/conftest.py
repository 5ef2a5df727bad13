"""End-to-end: the simulator and gunicorn as real processes on the suite's database.

The fixtures (``sim``, ``shop``, ``phone``, …) live in ``tests/livestack.py``, shared
with the browser tests; these names are kept for the tests that import them from here.
"""

from tests.livestack import ACCOUNT, SERVER_ENV, database_url

__all__ = ["ACCOUNT", "SERVER_ENV", "database_url"]
