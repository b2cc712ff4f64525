"""The demo store that ``make run`` starts with: a creator, a store and three products with files."""

import io
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.db import transaction

from stall.accounts.models import User
from stall.catalog.models import PriceType, ProductStatus
from stall.catalog.services import product_create
from stall.stores.models import Store
from stall.stores.services import store_create

DEMO_EMAIL = "creator@demo.stall"


@dataclass
class DemoResult:
    store: Store
    email: str
    password: str
    created: bool


def _cover(color: tuple[int, int, int]) -> ContentFile:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (800, 600), color)
    draw = ImageDraw.Draw(image)
    for i in range(0, 800, 40):
        draw.line([(i, 0), (i + 300, 600)], fill=tuple(min(255, c + 30) for c in color), width=8)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return ContentFile(buffer.getvalue(), name="cover.png")


def _file(name: str, text: str) -> ContentFile:
    upload = ContentFile(text.encode(), name=name)
    upload.content_type = "text/plain"
    return upload


@transaction.atomic
def demo_create(*, password: str) -> DemoResult:
    store = Store.objects.filter(slug="demo").first()
    if store is not None:
        return DemoResult(store=store, email=store.owner.email, password=password, created=False)
    user = User.objects.filter(email=DEMO_EMAIL).first() or User.objects.create_user(DEMO_EMAIL, password, name="Demo Creator")
    store = store_create(
        owner=user, name="Ada's Field Notes", slug="demo", currency="USD",
        bio="Field recordings, zines and sample packs, made in a small studio. **Everything is DRM-free.**",
    )
    products = [
        dict(name="Field Recordings Vol. 1", amount=300, price_type=PriceType.FIXED, color=(47, 91, 211),
             description="Forty minutes of rain, trains and city parks, recorded on a handheld recorder.\n\n- 12 tracks\n- WAV and MP3",
             file=("field-recordings-vol-1.txt", "Field Recordings Vol. 1 — track list and liner notes.\n")),
        dict(name="Sample Pack", amount=100, suggested_amount=500, price_type=PriceType.PAY_WHAT_YOU_WANT, color=(31, 122, 77),
             description="One hundred one-shot samples. Pay what you want, from **$1**.",
             file=("sample-pack-readme.txt", "Sample Pack — thank you for supporting the studio.\n")),
        dict(name="Zine: How I Record", amount=0, price_type=PriceType.FIXED, color=(138, 90, 0),
             description="A free 12-page zine about the gear and the habits behind the recordings.",
             file=("how-i-record.txt", "How I Record — a zine.\n")),
    ]
    for spec in products:
        product_create(
            store=store, name=spec["name"], amount=spec["amount"], price_type=spec["price_type"],
            suggested_amount=spec.get("suggested_amount"), description=spec["description"],
            status=ProductStatus.PUBLISHED, cover=_cover(spec["color"]), files=[_file(*spec["file"])],
        )
    return DemoResult(store=store, email=user.email, password=password, created=True)
