"""The shipping app's tasks (shopsite/celery.py): uploads, their sweep, the shipped message,
the shipping deadline. Each is idempotent: the database decides what is left to do, so a task
delivered twice, retried or swept again does it once.

Enqueuing never fails the caller: a broker that is down is logged, and the upload (already
``pending`` in the database) is picked up by ``uploads_due_enqueue`` once it is back.
"""

from __future__ import annotations

import logging

from celery import shared_task

from shipping.subscribe import MessageOutcome, shipped_message_send
from shipping.sweeps import orders_unshipped_flag
from shipping.uploads import UploadOutcome, shipment_upload, uploads_due

logger = logging.getLogger(__name__)

# The shipped message is tried again after 10 s, 20 s … (5 retries, ≈ 5 minutes in all).
MESSAGE_RETRY_SECONDS = 10


@shared_task(bind=True, max_retries=None, acks_late=True, ignore_result=True)
def upload_shipment(self, shipment_id: int) -> str:
    """One attempt at a shipment's upload; a retryable failure comes back when it is due."""
    result = shipment_upload(shipment_id=shipment_id)
    if result.outcome == UploadOutcome.RETRY:
        # The row holds the retry (the sweep would find it); this only saves the wait for it.
        raise self.retry(countdown=result.retry_in)
    return result.outcome


@shared_task(ignore_result=True)
def uploads_due_enqueue() -> int:
    """Every minute (CELERY_BEAT_SCHEDULE): enqueue the pending uploads that are due."""
    queued = 0
    for shipment_id in uploads_due():
        if not upload_enqueue(shipment_id):
            break  # the broker is down: the next sweep tries again
        queued += 1
    if queued:
        logger.info("uploads due enqueued: %s", queued)
    return queued


@shared_task(bind=True, max_retries=5, acks_late=True, ignore_result=True)
def send_shipped_message(self, shipment_id: int) -> str:
    final = self.request.retries >= self.max_retries
    result = shipped_message_send(shipment_id=shipment_id, final=final)
    if result.outcome == MessageOutcome.RETRY:
        raise self.retry(countdown=MESSAGE_RETRY_SECONDS * 2**self.request.retries)
    return result.outcome


@shared_task(ignore_result=True)
def unshipped_orders_flag() -> int:
    """Every 10 minutes: flag paid orders nearing WeChat's shipping deadline (once)."""
    return orders_unshipped_flag()


def upload_enqueue(shipment_id: int) -> bool:
    """Queue a shipment's upload; False (logged) when the broker cannot take it."""
    return _enqueue(upload_shipment, shipment_id)


def message_enqueue(shipment_id: int) -> bool:
    return _enqueue(send_shipped_message, shipment_id)


def _enqueue(task, shipment_id: int) -> bool:
    try:
        task.delay(shipment_id)
    except Exception as exc:  # kombu's OperationalError, or whatever the transport raises
        logger.warning(
            "could not enqueue %s shipment=%s (%s); a pending upload is swept up later",
            task.name,
            shipment_id,
            type(exc).__name__,
        )
        return False
    return True
