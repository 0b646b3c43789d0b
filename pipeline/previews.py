"""Small JPEG previews of files for the web page, made on the server.

The ONE place a preview is made: ``preview_jpeg(path, max_side)``. The browser never gets
the file itself (it may be hostile, huge, or a format the phone cannot show), only a
re-encoded JPEG at most ``max_side`` pixels on its long side, decoded the cheap way
(Pillow's draft mode: a 12-megapixel JPEG costs a 1/8 decode), EXIF orientation applied,
with the gate's decompression-bomb limit; for a video, its poster frame (a tenth into the
clip, ``video_decode.poster_frame``). Anything that cannot be shown gives None.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps

from pipeline import video_decode
from pipeline.signatures import register_heif, to_rgb
from pipeline.video_formats import sniff_video_file

MAX_PIXELS = 100_000_000      # the gate's default limit: nothing larger is ever filed


def preview_jpeg(path: Path, max_side: int) -> bytes | None:
    """A JPEG of ``path`` no larger than ``max_side`` x ``max_side``, or None."""
    try:
        video = sniff_video_file(path)
    except OSError:
        return None
    if video:
        image = video_decode.poster_frame(path)
        return None if image is None else _encoded(image, max_side)
    register_heif()
    try:
        with warnings.catch_warnings(), open(path, "rb") as handle:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(handle)
            if image.width * image.height > MAX_PIXELS:
                return None
            image.draft("RGB", (max_side, max_side))
            image = to_rgb(ImageOps.exif_transpose(image))
    except Exception:  # noqa: BLE001 - a hostile file may trip any decoder: no preview
        return None
    return _encoded(image, max_side)


def _encoded(image: Image.Image, max_side: int) -> bytes:
    image = ImageOps.contain(to_rgb(image), (max_side, max_side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()
