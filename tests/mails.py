"""Real e-mails with real pictures in them, shaped the way family mail clients send them."""

from __future__ import annotations

import base64
import functools
import io
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone

from PIL import Image

from pipeline.sources import mail
from tests import images

FAMILY = "grandma@family.example"


@functools.lru_cache(maxsize=None)
def picture(seed: int, size: tuple[int, int] = (480, 320), kind: str = "JPEG") -> bytes:
    """A small, distinct photo-like JPEG (cached: tests reuse them across homes).

    Painted like ``images.scene`` (``images.painting``) but straight at the target size, which keeps dozens of them cheap to make.
    """
    buffer = io.BytesIO()
    images.painting(seed, size, octaves=(3, 6, 12, 24, 48)).save(buffer, kind, quality=85)
    return buffer.getvalue()


def logo() -> bytes:
    """A 64x64 signature logo."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def message(sender: str = FAMILY, subject: str = "Photos", *, message_id: str | None = "",
            headers: dict | None = None) -> EmailMessage:
    """A plain-text message, ready for attachments."""
    letter = EmailMessage()
    for name, value in (headers or {}).items():
        letter[name] = value
    letter["From"] = sender
    letter["To"] = "frame@family.example"
    letter["Subject"] = subject
    letter["Date"] = format_datetime(datetime(2026, 11, 20, 10, 30, tzinfo=timezone.utc))
    if message_id is not None:
        letter["Message-ID"] = message_id or make_msgid(domain="family.example")
    letter.set_content("Look at these!\n")
    return letter


def with_images(pictures: list[tuple[str, bytes]], **options) -> bytes:
    """A message with each (name, bytes) attached as image/jpeg."""
    letter = message(**options)
    for name, data in pictures:
        letter.add_attachment(data, maintype="image", subtype="jpeg", filename=name)
    return letter.as_bytes()


def kitchen_sink() -> bytes:
    """Every shape a family mail client produces, in one message."""
    outer = message(subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?= from the sea")
    outer.add_alternative("<p>Look <img src='cid:inline1'></p>", subtype="html")
    html = outer.get_payload()[1]
    html.add_related(picture(1), "image", "png", cid="<inline1>")   # inline, no name
    outer.add_attachment(picture(2), maintype="image", subtype="jpeg",
                         filename="Grüße vom Meer.jpg")                     # RFC 2231 name
    nested = EmailMessage()
    nested.set_content("inner text")
    nested.add_attachment(picture(3), maintype="image", subtype="jpeg", filename="deep.jpg")
    outer.attach(nested)                                                    # nested multipart
    forwarded = message(sender="uncle@elsewhere.example", subject="Fwd")
    forwarded.add_attachment(picture(4), maintype="image", subtype="jpeg",
                             filename="forwarded.jpg")
    outer.add_attachment(forwarded)                                         # message/rfc822
    outer.add_attachment(picture(5), maintype="application", subtype="octet-stream",
                         filename="IMG_1.JPG")                               # octet-stream image
    outer.add_attachment(b"I am text, not a photo\n" * 20, maintype="text", subtype="plain",
                         filename="x.jpg")                                   # text named .jpg
    outer.add_attachment(logo(), maintype="image", subtype="png", filename="logo.png")
    raw = outer.as_bytes()
    encoded_word = base64.b64encode("Été à la plage.jpg".encode()).decode()
    part = (f'--BOUNDARY\r\nContent-Type: image/jpeg; name="=?UTF-8?B?{encoded_word}?="\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(picture(6)).decode().replace("\n", "\r\n"))
    return _append_raw_part(raw, part)


def _append_raw_part(raw: bytes, part: str) -> bytes:
    """Add a hand-written part (an encoded-word name, as Outlook writes it) to the outer mix."""
    boundary = mail.parse(raw).get_boundary().encode()
    closing = b"--" + boundary + b"--"
    part_bytes = part.replace("BOUNDARY", boundary.decode()).encode()
    return raw.replace(closing, part_bytes.rstrip(b"\r\n") + b"\r\n" + closing)
