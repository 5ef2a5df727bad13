"""A gunicorn configuration file (``GUNICORN_CMD_ARGS="--config bench/cprofile_hooks.py"``):
cProfile inside every worker, around each request that carries an ``X-Bench-Profile``
header (not the warm-up), dumped when the worker exits.

For bench/profiling.py when py-spy is not installed. ``BENCH_CPROFILE_DIR``: where the
``<pid>.prof`` files go; ``BENCH_CPROFILE_TIMER``: ``wall`` (time.perf_counter: waits on
PostgreSQL included) or ``cpu`` (time.process_time: Python running, and the C it calls).
"""

import cProfile
import os
import time

TIMERS = {"wall": time.perf_counter, "cpu": time.process_time}


def post_fork(server, worker):
    worker.bench_profile = cProfile.Profile(TIMERS[os.environ["BENCH_CPROFILE_TIMER"]])


def pre_request(worker, req):
    worker.bench_profiling = any(name == "X-BENCH-PROFILE" for name, _ in req.headers)
    if worker.bench_profiling:
        worker.bench_profile.enable()


def post_request(worker, req, environ, resp):
    if worker.bench_profiling:
        worker.bench_profile.disable()


def worker_exit(server, worker):
    profile = getattr(worker, "bench_profile", None)
    if profile is not None:
        profile.dump_stats(os.path.join(os.environ["BENCH_CPROFILE_DIR"], f"{worker.pid}.prof"))
