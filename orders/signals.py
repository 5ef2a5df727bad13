"""What orders tells the apps above it, without importing them (the layers point down:
docs/ARCHITECTURE.md). ``shipping`` connects to these in its ``AppConfig.ready``; with no
receiver connected nothing happens and every shipment stays ``not_required``.

- ``shipment_recorded`` (``shipment=``): a new shipment, sent by ``orders.fulfilment`` only
  once the transaction that recorded it has committed, so a receiver (or the task it
  enqueues) always finds the row. Sent with ``send_robust``: a receiver that fails is logged
  and never fails the ship that already happened.
- ``shipment_upload_requested`` (``shipment_ids=``): staff asked, in admin, for the upload of
  these shipments to WeChat to be tried again now. A receiver returns how many it queued.
"""

from django.dispatch import Signal

shipment_recorded = Signal()
shipment_upload_requested = Signal()
