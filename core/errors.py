"""Domain errors: refusals that carry their own HTTP meaning.

A service raises a ``DomainError`` subclass; ``core.api.exception_handler``, the one place
an error becomes HTTP, answers ``status_code`` with ``{"detail": str(exc), **exc.extra()}``
(empty extra fields left out). Views neither catch nor translate them, and a subclass added
later answers its parent's status instead of a 500. ``str()`` is shown to the client as
it is: English (the API's language), and nothing secret.
"""


class DomainError(Exception):
    status_code: int = 400

    def extra(self) -> dict[str, object]:
        """Fields the answer carries besides ``detail`` (``total_fee``, ``err_code``, …)."""
        return {}
