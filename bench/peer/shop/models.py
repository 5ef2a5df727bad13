from django.db import models


class Order(models.Model):
    UNPAID = "unpaid"
    PAID = "paid"
    STATUS_CHOICES = [(UNPAID, "Unpaid"), (PAID, "Paid")]

    out_trade_no = models.CharField(max_length=32, unique=True)
    total_fee = models.PositiveIntegerField()  # fen
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=UNPAID)
    transaction_id = models.CharField(max_length=32, blank=True, default="")
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.out_trade_no
