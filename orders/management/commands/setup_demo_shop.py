"""``python manage.py setup_demo_shop``: a small catalogue and a staff user, for the demo."""

import json

from django.core.management.base import BaseCommand

from accounts.models import User
from orders.models import Product

CATALOGUE = [
    ("Oolong tea 250g", 4500, 100),
    ("Jasmine tea 100g", 2800, 100),
    ("Celadon tea cup", 1200, None),
]


class Command(BaseCommand):
    help = "Create the demo catalogue (idempotent) and a staff user with the given password."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", required=True)

    def handle(self, *args, username, password, **options):
        products = [
            Product.objects.get_or_create(name=name, defaults={"price": price, "stock": stock})[0]
            for name, price, stock in CATALOGUE
        ]
        staff, _ = User.objects.get_or_create(username=username)
        staff.is_staff = staff.is_superuser = True
        staff.set_password(password)
        staff.save()
        self.stdout.write(
            json.dumps(
                {"products": [{"id": p.pk, "name": p.name, "price": p.price} for p in products]}
            )
        )
