"""Statements and commits per notify (issue #16), and what a failure or a crash at any point
of the one transaction leaves behind (docs/INVARIANTS.md §6.1, §6.2).

Counted outside any test transaction (``transaction=True``), as in production: a COMMIT,
or a write run in autocommit, is one commit. Django's connection health check adds one
``SELECT 1`` per request on a reused connection, which the test client does not see.
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import os
import re
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.forms.models import model_to_dict

from orders.models import Order
from payments.models import PaymentNotification
from tests.factories import (
    NOTIFY_SUCCESS,
    TRANSACTION_ID,
    make_order,
    make_shopper,
    notify_body,
    post_notify,
    reload,
)

pytestmark = pytest.mark.django_db(transaction=True)

Outcome = PaymentNotification.Outcome
POSTGRES = connection.vendor == "postgresql"
WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|WITH)\b")
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def deliver(body: bytes) -> tuple[bytes, int, int]:
    """Post ``body``: the reply, the statements sent (transaction control aside) and the
    commits that wrote something (a COMMIT after a write, or a write in autocommit)."""
    statements, commits, wrote = [], [], []

    def note(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not sql.startswith(TRANSACTION_CONTROL):
            statements.append(sql)
            # PostgreSQL says how many rows a statement wrote (the one that pays and records
            # may write none); SQLite's rowcount says nothing until RETURNING rows are read.
            if WRITE.match(sql) and (context["cursor"].rowcount > 0 or not POSTGRES):
                if connection.get_autocommit():
                    commits.append(sql)
                else:
                    wrote.append(sql)
        return result

    real_commit = connection.commit

    def commit():
        if wrote:
            commits.append("COMMIT")
            wrote.clear()
        return real_commit()

    with connection.execute_wrapper(note), mock.patch.object(connection, "commit", commit):
        reply = post_notify(body).content
    return reply, len(statements), len(commits)


@pytest.fixture
def order(products) -> Order:
    return make_order(make_shopper(), products)


class TestOneCommitPerNotify:
    def test_a_first_delivery_is_one_statement_on_postgresql_and_always_one_commit(self, order):
        reply, statements, commits = deliver(notify_body(order))

        assert reply == NOTIFY_SUCCESS
        # PostgreSQL: the order's conditional UPDATE and the ledger's INSERT in one statement;
        # elsewhere the UPDATE … RETURNING and the INSERT in one transaction.
        assert (statements, commits) == ((1, 1) if POSTGRES else (2, 1))
        [row] = PaymentNotification.objects.all()
        assert (row.outcome, row.order, row.raw_body) == (
            Outcome.PAID,
            order,
            notify_body(order).decode(),
        )

    def test_a_copy_is_two_statements_on_postgresql_and_always_one_commit(self, order):
        post_notify(notify_body(order))

        reply, statements, commits = deliver(notify_body(order))

        assert reply == NOTIFY_SUCCESS
        # PostgreSQL: the statement that would pay it (it writes nothing), then the one that
        # finds the payment and writes the row. Elsewhere: the same UPDATE, the read, the
        # row, in one transaction.
        assert (statements, commits) == ((2, 1) if POSTGRES else (3, 1))
        outcomes = [row.outcome for row in PaymentNotification.objects.order_by("pk")]
        assert outcomes == [Outcome.PAID, Outcome.DUPLICATE]

    def test_a_payment_that_does_not_fit_takes_the_locking_way_in_one_commit(self, order):
        reply, _, commits = deliver(notify_body(order, total_fee=1, cash_fee=1))

        assert reply == NOTIFY_SUCCESS  # recorded and flagged
        assert commits == 1
        assert PaymentNotification.objects.get().outcome == Outcome.FLAGGED

    def test_a_refused_notify_is_its_row_alone(self, order):
        reply, _, commits = deliver(notify_body(order, key="0" * 32))

        assert b"FAIL" in reply
        # The attempt at once (nothing fits: nothing written), the locking read in a
        # transaction rolled back, then the row on its own.
        assert commits == 1
        assert PaymentNotification.objects.get().outcome == Outcome.REJECTED


class TestTheSameRecordEitherWay:
    """The way at once (one conditional UPDATE) records what the locking way records."""

    @pytest.mark.parametrize("copies", [1, 2])
    def test_paid_and_duplicate_rows_are_the_same(self, products, copies):
        at_once, locking = (
            make_order(make_shopper(), products),
            make_order(make_shopper(), products),
        )
        for _ in range(copies):
            post_notify(notify_body(at_once, transaction_id="4200000000000000000000000001"))
        with mock.patch.object(connection.features, "can_return_columns_from_insert", False):
            for _ in range(copies):
                post_notify(notify_body(locking, transaction_id="4200000000000000000000000002"))

        def rows(order):
            return [
                model_to_dict(row, exclude=["id", "raw_body", "out_trade_no", "transaction_id"])
                | {"order": row.order_id == order.pk, "processed_at": None}
                for row in PaymentNotification.objects.filter(order=order).order_by("pk")
            ]

        assert rows(at_once) == rows(locking)
        assert [r["outcome"] for r in rows(at_once)] == [Outcome.PAID, Outcome.DUPLICATE][:copies]
        paid = [reload(at_once), reload(locking)]
        assert [(o.status, o.paid_fee, o.paid_at) for o in paid] == [
            (Order.Status.PAID, 4500, paid[0].paid_at)
        ] * 2


def fail_first(pattern: str):
    """An execute wrapper: the first statement containing ``pattern`` fails, as when the
    connection drops."""
    failed = []

    def wrapper(execute, sql, params, many, context):
        if pattern in sql and not failed:
            failed.append(sql)
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    return wrapper


class TestAFailureInsideTheTransaction:
    """Rolled back, the body recorded on its own with ERROR, FAIL answered; WeChat's resend
    is then applied once."""

    def test_while_paying_the_order(self, order):
        body = notify_body(order)
        with connection.execute_wrapper(fail_first('UPDATE "orders_order"')):
            reply = post_notify(body).content

        assert b"FAIL" in reply
        assert reload(order).status == Order.Status.UNPAID
        [row] = PaymentNotification.objects.all()
        assert (row.outcome, row.raw_body, row.order) == (Outcome.ERROR, body.decode(), None)
        assert post_notify(body).content == NOTIFY_SUCCESS
        assert reload(order).status == Order.Status.PAID

    def test_in_payment_apply_on_the_locking_way(self, order):
        body = notify_body(order, total_fee=1, cash_fee=1)  # does not fit: payment_apply
        with connection.execute_wrapper(fail_first('UPDATE "orders_order"')):
            reply = post_notify(body).content

        assert b"FAIL" in reply
        assert (reload(order).status, reload(order).transaction_id) == (Order.Status.UNPAID, None)
        assert PaymentNotification.objects.get().outcome == Outcome.ERROR
        assert post_notify(body).content == NOTIFY_SUCCESS
        assert reload(order).transaction_id == TRANSACTION_ID  # recorded, flagged, once

    def test_while_writing_the_ledger_row_after_the_order_was_paid(self, order):
        body = notify_body(order)
        # The order's UPDATE has run (on PostgreSQL in the same statement): the row fails.
        with connection.execute_wrapper(fail_first('INSERT INTO "payments_paymentnotification"')):
            reply = post_notify(body).content

        assert b"FAIL" in reply
        assert reload(order).status == Order.Status.UNPAID  # the payment went with it
        [row] = PaymentNotification.objects.all()
        assert (row.outcome, row.raw_body) == (Outcome.ERROR, body.decode())
        assert post_notify(body).content == NOTIFY_SUCCESS
        assert PaymentNotification.objects.filter(outcome=Outcome.PAID).count() == 1

    def test_at_the_commit(self, order):
        body = notify_body(order, total_fee=1, cash_fee=1)  # the locking way: a COMMIT
        real_commit = connection.commit
        calls = []

        def commit_fails_once():
            calls.append(1)
            if len(calls) == 1:
                raise OperationalError("could not commit")
            return real_commit()

        with mock.patch.object(connection, "commit", commit_fails_once):
            reply = post_notify(body).content

        assert b"FAIL" in reply
        assert reload(order).transaction_id is None
        assert PaymentNotification.objects.get().outcome == Outcome.ERROR
        assert post_notify(body).content == NOTIFY_SUCCESS
        assert reload(order).transaction_id == TRANSACTION_ID


def killed_while_posting(body: bytes, after: str) -> int:
    """Posts ``body`` in a child process that dies (``os._exit``) right after the first
    statement containing ``after`` has run, before anything else: the worker killed
    mid-request. Returns the child's exit status (0 when it died there)."""
    connection.close()  # the child opens its own connection
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:

            def die_after(execute, sql, params, many, context):
                result = execute(sql, params, many, context)
                if after in sql:
                    os._exit(0)
                return result

            with connection.execute_wrapper(die_after):
                post_notify(body)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.postgres
class TestAWorkerKilled:
    def test_mid_transaction_leaves_nothing_and_the_resend_is_applied(self, order):
        body = notify_body(order, total_fee=1, cash_fee=1)  # the locking way: a transaction

        # Killed after the order's UPDATE, before the ledger row and the COMMIT.
        assert killed_while_posting(body, after='UPDATE "orders_order"') == 0

        assert (reload(order).status, reload(order).transaction_id) == (Order.Status.UNPAID, None)
        assert not PaymentNotification.objects.exists()  # nothing answered, nothing kept
        # WeChat got no answer and sends it again (§5.4).
        assert post_notify(body).content == NOTIFY_SUCCESS
        assert reload(order).transaction_id == TRANSACTION_ID
        assert PaymentNotification.objects.get().outcome == Outcome.FLAGGED

    def test_after_the_commit_but_before_the_answer_the_resend_is_a_duplicate(self, order):
        body = notify_body(order)

        # The statement that pays and records it has committed; SUCCESS never went out.
        assert killed_while_posting(body, after='INSERT INTO "payments_paymentnotification"') == 0

        assert reload(order).status == Order.Status.PAID
        assert post_notify(body).content == NOTIFY_SUCCESS
        outcomes = list(
            PaymentNotification.objects.order_by("pk").values_list("outcome", flat=True)
        )
        assert outcomes == [Outcome.PAID, Outcome.DUPLICATE]


@pytest.mark.postgres
class TestADeadConnection:
    """A notify sends no health check (a round trip as long as its own statement): when its
    connection turns out dead, it is processed once more on a new one."""

    @pytest.mark.parametrize("how", ["closed", "terminated"])
    def test_is_replaced_and_the_notify_applied_once(self, order, how):
        connection.ensure_connection()
        if how == "closed":  # dropped behind Django's back (a proxy's idle timeout)
            connection.connection.close()
        else:  # the server ended it (a restart, an administrator)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                [pid] = cursor.fetchone()
            import psycopg2

            other = psycopg2.connect(**connection.get_connection_params())
            try:
                other.cursor().execute("SELECT pg_terminate_backend(%s)", [pid])
            finally:
                other.close()

        assert post_notify(notify_body(order)).content == NOTIFY_SUCCESS

        assert reload(order).status == Order.Status.PAID
        assert [row.outcome for row in PaymentNotification.objects.filter(order=order)] == [
            Outcome.PAID
        ]
