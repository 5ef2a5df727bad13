"""``python manage.py setup_demo_shop``: a small catalogue and a staff user, for the demo.

The products' pictures are drawn here with Pillow (a coloured square with the product's
initial) and stored through the default storage, so no image is committed to the repo.
Running it again changes nothing: products are found by name, a picture is drawn only
when its file is missing, and what staff changed (description, picture) is kept.
"""

import colorsys
import json
import zlib
from io import BytesIO

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from django.utils.text import slugify
from PIL import Image, ImageDraw, ImageFont

from accounts.models import User
from orders.models import Product
from orders.selectors import catalogue_cache_invalidate

# name, price (fen), stock (None = unlimited), description, ships to the shopper. The demo
# buys the first and the third: keep them first and third.
CATALOGUE = [
    (
        "Oolong tea 250g",
        4500,
        100,
        "Tieguanyin from Anxi, Fujian: lightly roasted, floral, good for several infusions.",
        True,
    ),
    (
        "Jasmine tea 100g",
        2800,
        100,
        "Green tea scented with fresh jasmine blossoms, seven times over.",
        True,
    ),
    (
        "Celadon tea cup",
        1200,
        None,
        "A hand-thrown Longquan celadon cup, 80 ml.",
        True,
    ),
    (
        "Tea tasting e-voucher",
        9900,
        None,
        "One guided tasting for two at the shop; the code is sent by WeChat message, "
        "nothing is shipped.",
        False,
    ),
]

PICTURE_PIXELS = 480


def demo_picture(name: str) -> bytes:
    """A PNG square in a colour of the name's own, with its initial in white."""
    hue = zlib.crc32(name.encode()) % 360 / 360
    colour = tuple(round(c * 255) for c in colorsys.hls_to_rgb(hue, 0.42, 0.5))
    picture = Image.new("RGB", (PICTURE_PIXELS, PICTURE_PIXELS), colour)
    font = ImageFont.load_default(size=PICTURE_PIXELS * 0.55)
    middle = PICTURE_PIXELS / 2
    ImageDraw.Draw(picture).text(
        (middle, middle), name[:1].upper(), fill="white", font=font, anchor="mm"
    )
    out = BytesIO()
    picture.save(out, "PNG", optimize=True)
    return out.getvalue()


class Command(BaseCommand):
    help = "Create the demo catalogue (idempotent) and a staff user with the given password."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", required=True)

    def handle(self, *args, username, password, **options):
        products = [self._product(*entry) for entry in CATALOGUE]
        # The server may already be up with the old catalogue in its shared cache.
        catalogue_cache_invalidate()
        staff, _ = User.objects.get_or_create(username=username)
        staff.is_staff = staff.is_superuser = True
        staff.set_password(password)
        staff.save()
        self.stdout.write(
            json.dumps(
                {"products": [{"id": p.pk, "name": p.name, "price": p.price} for p in products]}
            )
        )

    def _product(
        self, name: str, price: int, stock: int | None, description: str, ships: bool
    ) -> Product:
        product, _ = Product.objects.get_or_create(
            name=name,
            defaults={
                "price": price,
                "stock": stock,
                "description": description,
                "requires_shipping": ships,
            },
        )
        changed = []
        if not product.description:  # made by an older version of this command
            product.description = description
            changed.append("description")
        # Always the same file for the same product: a second run finds it instead of
        # storing a copy next to it.
        picture = f"products/demo-{slugify(name)}.png"
        if not product.image or product.image.name == picture:
            if not default_storage.exists(picture):
                picture = default_storage.save(picture, ContentFile(demo_picture(name)))
            if product.image.name != picture:
                product.image.name = picture
                changed.append("image")
        if changed:
            product.save(update_fields=[*changed, "updated_at"])
        return product
