"""The shopper's address, as seen by the outermost proxy we trust.

``X-Forwarded-For`` is written by the client as much as by proxies: only the entries our
own proxies appended can be believed. With ``TRUSTED_PROXIES = N`` (nginx in front: 1),
the N-th address from the right is the one the outermost trusted proxy saw connect;
anything left of it is whatever the client chose to send. With N = 0 the header is
ignored and ``REMOTE_ADDR`` is the answer.

Used for the login/order throttles' key, WeChat's ``spbill_create_ip`` and the notify
ledger's ``remote_addr``, so all three agree on who the caller was.
"""

import ipaddress

from django.conf import settings

# Attribute on the Django HttpRequest that holds the derived address: derived once per
# request however many throttles and views ask.
_CACHE_ATTR = "_shopsite_client_ip"


def client_ip(request) -> str:
    """The caller's IP address; ``REMOTE_ADDR`` when the header cannot be believed.

    Accepts a Django ``HttpRequest`` or a DRF ``Request`` (which wraps one).
    """
    http_request = getattr(request, "_request", request)
    cached = getattr(http_request, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    address = _derive(http_request.META, settings.TRUSTED_PROXIES)
    setattr(http_request, _CACHE_ATTR, address)
    return address


def _derive(meta, trusted_proxies: int) -> str:
    remote_addr = meta.get("REMOTE_ADDR") or ""
    forwarded_for = meta.get("HTTP_X_FORWARDED_FOR")
    if trusted_proxies <= 0 or not forwarded_for:
        return remote_addr
    entries = [entry.strip() for entry in forwarded_for.split(",")]
    if len(entries) < trusted_proxies:
        # Fewer entries than proxies: the request did not come through all of them.
        return remote_addr
    try:
        return str(ipaddress.ip_address(entries[-trusted_proxies]))
    except ValueError:
        return remote_addr
