from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ShippingConfig(AppConfig):
    name = "shipping"
    verbose_name = _("Shipping with WeChat")

    def ready(self) -> None:
        # orders announces shipments with signals (orders/signals.py): it imports nothing of
        # shipping, which sits above it.
        from orders import signals
        from shipping import checks, receivers  # noqa: F401 (checks registers itself)

        signals.shipment_recorded.connect(
            receivers.shipment_recorded, dispatch_uid="shipping.shipment_recorded"
        )
        signals.shipment_upload_requested.connect(
            receivers.shipment_upload_requested, dispatch_uid="shipping.shipment_upload_requested"
        )
