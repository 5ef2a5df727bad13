"""``GET, POST /wechat/message``: WeChat's message push (docs/INVARIANTS.md §8,
docs/protocol/miniprogram-server-api.md §3). Parsing and rules are in shipping/push.py.

CSRF-exempt (WeChat has no cookie), no session, no throttle (WeChat's own servers call it), and
no request-wide transaction: the ledger row is written before anything else, and ``success`` is
answered only after the transaction applying the event has committed.
"""

import logging

from django.core.handlers.wsgi import get_bytes_from_wsgi
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from core.client_ip import client_ip
from shipping.push import (
    MAX_BODY_BYTES,
    Verdict,
    message_receive,
    message_token_missing,
    message_url_verify,
)

logger = logging.getLogger(__name__)

STATUS = {
    Verdict.REFUSED: 403,
    Verdict.UNREADABLE: 400,
    Verdict.TOO_LARGE: 413,
    Verdict.NOT_CONFIGURED: 503,
    Verdict.FAILED: 500,
}


@csrf_exempt
@require_http_methods(["GET", "POST"])
def message(request):
    if request.method == "GET":
        return _verify_url(request)
    return _receive(request)


def _verify_url(request) -> HttpResponse:
    """§3.2: the raw ``echostr`` as the whole body when the signature is ours, else 403."""
    missing = message_token_missing()
    if missing:
        return _error(503, missing)
    params = request.GET
    verified = message_url_verify(
        signature=params.get("signature", ""),
        timestamp=params.get("timestamp", ""),
        nonce=params.get("nonce", ""),
    )
    if not verified:
        return _error(403, "Bad or missing signature.")
    if "echostr" not in params:
        return _error(400, "echostr is missing.")
    return HttpResponse(params["echostr"], content_type="text/plain; charset=utf-8")


def _receive(request) -> HttpResponse:
    body = request.read(MAX_BODY_BYTES + 1)
    try:
        receipt = message_receive(
            body=body,
            query=request.GET.dict(),
            # WSGI hands it over as latin-1 (PEP 3333): the bytes sent, read as UTF-8.
            query_string=get_bytes_from_wsgi(request.META, "QUERY_STRING", "").decode(
                "utf-8", "replace"
            ),
            remote_addr=client_ip(request) or None,
        )
    except Exception:
        # Not even the ledger row could be written (database down?). Not success, so WeChat
        # retries; the evidence stays in the log (an event holds no secret, and in safe mode
        # it is encrypted).
        logger.exception("message push could not be recorded; body=%r", body[:4096])
        return _error(500, "The push could not be recorded; send it again.")
    if receipt.verdict == Verdict.ACKNOWLEDGED:
        return HttpResponse(b"success", content_type="text/plain; charset=utf-8")
    return _error(STATUS[receipt.verdict], receipt.detail)


def _error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)
