"""What Django's error reports (the DEBUG 500 page, the admins' error e-mail) may show.

Functions that hold the AppSecret, a session_key, a bearer token or the key tokens are
derived from are marked with ``sensitive_variables``; Django's own filter honours the
marks only when DEBUG is off ("with DEBUG on your site is not safe anyway"). But DEBUG
gets switched on in staging, or for one afternoon in production to chase a bug, and a
500 page read over someone's shoulder or pasted into a ticket must not carry a secret.
So the marks hold whatever DEBUG says.
"""

from django.views.debug import SafeExceptionReporterFilter


class AlwaysSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    def is_active(self, request) -> bool:
        return True
