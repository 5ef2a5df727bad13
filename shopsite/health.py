from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from core.throttling import CACHE_ERRORS

_PROBE_KEY = "healthz:probe"


@require_GET
def healthz(request):
    """200 while the database answers, 503 otherwise (for the load balancer).

    The cache is reported but does not decide: without it only the throttles stop
    counting (they fail open), so an instance with a dead Redis still serves every
    shopper and taking it out of rotation would only move the same problem to the
    others. ``take_out_of_rotation`` says so in words for whoever reads the body.
    """
    database_ok = _database_ok()
    cache_ok = _cache_ok()
    if not database_ok:
        status = "unavailable"
    elif not cache_ok:
        status = "degraded"
    else:
        status = "ok"
    return JsonResponse(
        {
            "status": status,
            "database": "ok" if database_ok else "unavailable",
            "cache": "ok" if cache_ok else "unavailable",
            "take_out_of_rotation": not database_ok,
        },
        status=200 if database_ok else 503,
    )


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return False
    return True


def _cache_ok() -> bool:
    # One round trip; bounded by the cache's socket timeouts (settings.CACHES).
    try:
        cache.get(_PROBE_KEY)
    except CACHE_ERRORS:
        return False
    return True
