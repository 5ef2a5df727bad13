"""WeChat's notifies, past the middleware they have no use for (issue #16)."""

from django.conf import settings
from django.urls import Resolver404, resolve
from django.utils import translation

NOTIFY_PREFIX = "/payment/"


def skips_middleware(view):
    """Marks a view ``NotifyShortcutMiddleware`` calls directly (as ``csrf_exempt`` marks
    one for CsrfViewMiddleware)."""
    view.skips_middleware = True
    return view


class NotifyShortcutMiddleware:
    """Calls a notify view (``@skips_middleware``) straight away, past the middleware
    listed after this one; every other request goes through all of it.

    A notify is a POST from WeChat's servers, authenticated by its signature: it reads no
    session, user, message or CSRF token (its views are csrf_exempt), no static file, and
    its reply is never shown in a browser. Walking that middleware was 7 % of a notify's
    instructions (docs/PERFORMANCE.md). What a notify got from it, it still gets: the
    middleware listed before this one (SecurityMiddleware: the HTTPS redirect and its
    headers) runs as for any request; here, the host check of CommonMiddleware
    (``ALLOWED_HOSTS``, 400 otherwise), English (StaffLocaleMiddleware), and the headers
    CommonMiddleware and XFrameOptionsMiddleware add, so the reply is the same byte for byte.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if not path.startswith(NOTIFY_PREFIX):
            return self.get_response(request)
        try:
            match = resolve(path)
        except Resolver404:
            return self.get_response(request)
        if not getattr(match.func, "skips_middleware", False):
            return self.get_response(request)
        request.get_host()  # DisallowedHost (400) for a host not in ALLOWED_HOSTS
        translation.activate("en")
        request.LANGUAGE_CODE = "en"
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS.upper())
        return response
