"""``python manage.py reconcile_orders``: ask WeChat about orders and refunds whose fate
is open.

Safe from cron on several machines at once: each order is claimed for a while with a
conditional UPDATE before WeChat is asked, and every change it makes is idempotent.
Refunds are not claimed: sending one again reuses its ``out_refund_no`` (refunded once,
docs/protocol/wechat-pay-v2.md §7.1) and its result is applied exactly once, so two runs
only cost a query.

One bad order or refund (bad stored data, a database error, missing settings) fails
alone: it is logged with its traceback and counted as "failed (<error>)", the run goes on,
and exits non-zero after the summary so cron reports it. WeChat being down or refusing is
not a failure of the run: those are counted as "WeChat error" and tried again next time.

The summary counts each ``Reconciled`` and prints its label, in the active language
(LANGUAGE_CODE).
"""

import logging
from collections import Counter
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from core.config import WeChatNotConfigured
from orders.selectors import orders_to_reconcile
from orders.services import order_claim_for_reconcile
from payments.gateway import PayError
from payments.lifecycle import ReconcileAction, Reconciled, order_reconcile, refund_reconcile
from payments.selectors import refunds_to_reconcile

logger = logging.getLogger(__name__)

# A long run says how far it got on stderr, every this many orders (or refunds), so a cron
# log or a terminal shows it is alive; stdout keeps only the summary.
PROGRESS_EVERY = 50


class Command(BaseCommand):
    help = (
        "Record payments whose notify never came, close expired unpaid orders, "
        "send pending refunds again and ask WeChat about refunds still processing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--min-age-minutes",
            type=int,
            default=5,
            help="Only orders (and refunds unchanged) at least this old (default 5: give "
            "the notify a chance).",
        )
        parser.add_argument(
            "--limit", type=int, default=500, help="At most this many orders, and refunds."
        )
        parser.add_argument(
            "--claim-seconds",
            type=int,
            default=120,
            help="How long an order is reserved for this run against other runs.",
        )

    def handle(self, *args, min_age_minutes, limit, claim_seconds, verbosity, **options):
        summary: Counter[Reconciled] = Counter()
        candidates = list(
            orders_to_reconcile(older_than=timedelta(minutes=min_age_minutes), limit=limit)
        )
        for n, order in enumerate(candidates, start=1):
            done = self._order(order, claim_seconds)
            summary.update(done)
            if verbosity > 1:
                said = "; ".join(r.label for r in done)
                self.stdout.write(f"[{n}/{len(candidates)}] {order.out_trade_no}: {said}")
            self._progress(n, len(candidates), "orders", verbosity)
        self.stdout.write(f"reconcile_orders: {len(candidates)} orders looked at")
        refunds = self._refunds(summary, timedelta(minutes=min_age_minutes), limit, verbosity)
        self.stdout.write(f"reconcile_orders: {refunds} refunds looked at")
        lines = sorted((done.label, count) for done, count in summary.items())
        for label, count in lines:
            self.stdout.write(f"  {count:6d}  {label}")
        failed = sum(c for done, c in summary.items() if done.action == ReconcileAction.FAILED)
        if failed:
            raise CommandError(f"{failed} failed; their tracebacks are in the log.")

    def _order(self, order, claim_seconds: int) -> tuple[Reconciled, ...]:
        try:
            if not order_claim_for_reconcile(order=order, seconds=claim_seconds):
                return (Reconciled(ReconcileAction.TAKEN),)
            return order_reconcile(order=order)
        except PayError as exc:
            self.stderr.write(f"{order.out_trade_no}: {exc}")
            return (Reconciled(ReconcileAction.WECHAT_ERROR, exc.kind),)
        except Exception as exc:
            # Anything else is ours (data, database, settings): this order fails alone.
            return (self._failed(exc, "order out_trade_no", order.out_trade_no),)

    def _refunds(self, summary: Counter, older_than: timedelta, limit: int, verbosity: int) -> int:
        candidates = list(refunds_to_reconcile(older_than=older_than, limit=limit))
        for n, refund in enumerate(candidates, start=1):
            try:
                done = refund_reconcile(refund=refund, query_after=older_than)
            except PayError as exc:
                done = Reconciled(ReconcileAction.REFUND_WECHAT_ERROR, exc.kind)
                self.stderr.write(f"{refund.out_refund_no}: {exc}")
            except WeChatNotConfigured as exc:
                done = Reconciled(ReconcileAction.REFUND_WECHAT_ERROR, type(exc).__name__)
                self.stderr.write(f"{refund.out_refund_no}: {exc}")
            except Exception as exc:
                done = self._failed(exc, "refund out_refund_no", refund.out_refund_no)
            summary[done] += 1
            if verbosity > 1:
                self.stdout.write(f"[{n}/{len(candidates)}] {refund.out_refund_no}: {done.label}")
            self._progress(n, len(candidates), "refunds", verbosity)
        return len(candidates)

    def _failed(self, exc: Exception, what: str, number: str) -> Reconciled:
        """Log one item's failure with its traceback; what it counts as in the summary.

        Only our own numbers and the exception are logged: no request, no key.
        """
        logger.exception("reconcile failed for %s=%s", what, number)
        self.stderr.write(f"{number}: failed ({type(exc).__name__})")
        return Reconciled(ReconcileAction.FAILED, type(exc).__name__)

    def _progress(self, done: int, total: int, what: str, verbosity: int) -> None:
        if verbosity > 0 and done % PROGRESS_EVERY == 0 and done < total:
            self.stderr.write(f"reconcile_orders: {done}/{total} {what}…")
