"""Real encoded test images, made on the fly: photo-like pictures and their variants.

``photo(seed)`` paints a picture with the statistics of a photograph (1/f noise in colour:
large soft shapes plus finer texture), so thumbnails and hashes behave as they do on real
photos. The variant makers produce what families really send twice: re-compressed,
resized, rotated, EXIF-rotated, PNG and HEIC copies; and the near misses that must stay
apart: burst neighbours (shifted window, changed brightness, small zoom).
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageEnhance

CANVAS = (1400, 940)      # the scene a picture is cut from
SIZE = (1200, 800)        # the picture


def painting(seed: int, size: tuple[int, int],
             octaves: tuple[int, ...] = (3, 6, 12, 24, 48, 96)) -> Image.Image:
    """Photo-like RGB: octaves of smooth random colour fields, 1/f weighted."""
    rng = np.random.default_rng(seed)
    width, height = size
    total = np.zeros((height, width, 3), dtype=np.float32)
    for octave, cells in enumerate(octaves):
        field = rng.random((cells, int(cells * width / height) + 1, 3)).astype(np.float32)
        layer = Image.fromarray((field * 255).astype(np.uint8), "RGB").resize(
            (width, height), Image.Resampling.BICUBIC)
        total += np.asarray(layer, dtype=np.float32) / (1.6 ** octave)
    total -= total.min()
    total *= 235.0 / max(float(total.max()), 1.0)
    return Image.fromarray(total.astype(np.uint8), "RGB")


@functools.lru_cache(maxsize=16)
def scene(seed: int) -> Image.Image:
    """The CANVAS-sized scene a test picture and its burst neighbours are cut from."""
    return painting(seed, CANVAS)


def photo(seed: int, shift: tuple[float, float] = (0.0, 0.0), zoom: float = 1.0,
          brightness: float = 1.0) -> Image.Image:
    """A SIZE picture cut from ``scene(seed)``; shift/zoom/brightness make burst neighbours."""
    base = scene(seed)
    width, height = SIZE
    crop_w, crop_h = width / zoom, height / zoom
    left = (CANVAS[0] - crop_w) / 2 + shift[0] * width
    top = (CANVAS[1] - crop_h) / 2 + shift[1] * height
    picture = base.resize(SIZE, Image.Resampling.LANCZOS,
                          box=(left, top, left + crop_w, top + crop_h))
    if brightness != 1.0:
        picture = ImageEnhance.Brightness(picture).enhance(brightness)
    return picture


def jpeg(image: Image.Image, quality: int = 90, exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": quality}
    if exif is not None:
        options["exif"] = exif.tobytes()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Frame Test Camera"          # Make
    exif[0x0110] = "Model 1"                    # Model
    exif[0x0132] = "2026:07:14 10:11:12"        # DateTime
    exif[0x0112] = orientation                  # Orientation
    return exif


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def heic(image: Image.Image, quality: int = 85) -> bytes:
    import pillow_heif
    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    # the x265 "ultrafast" preset: the same format and decoder path, a tenth of the time
    image.save(buffer, "HEIF", quality=quality, enc_params={"preset": "ultrafast"})
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def resized(image: Image.Image, factor: float | None = None, long_edge: int | None = None):
    if long_edge is not None:
        factor = long_edge / max(image.size)
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.LANCZOS)


def exif_rotated(image: Image.Image) -> bytes:
    """Pixels stored turned 90 degrees clockwise with EXIF Orientation 8, so a viewer that
    honours EXIF turns them back and shows exactly ``image``."""
    stored = image.transpose(Image.Transpose.ROTATE_270)  # 90 degrees clockwise
    return jpeg(stored, exif=camera_exif(orientation=8))


def variants(original: Image.Image, original_bytes: bytes) -> dict[str, bytes]:
    """Every kind of copy the gate must recognise as the same photo."""
    return {
        "byte_copy": original_bytes,
        "exif_stripped": jpeg(decoded(original_bytes), quality=95),
        "recompressed": jpeg(decoded(original_bytes), quality=60),
        "downscaled_50": jpeg(resized(decoded(original_bytes), 0.5), quality=85),
        "downscaled_1024": jpeg(resized(decoded(original_bytes), long_edge=1024), quality=85),
        "rotated_90": jpeg(original.rotate(90, expand=True)),
        "rotated_180": jpeg(original.rotate(180)),
        "rotated_270": jpeg(original.rotate(270, expand=True)),
        "exif_orientation": exif_rotated(original),
        "png": png(decoded(original_bytes)),
        "heic": heic(original),
    }


def corrupt_jpeg(original_bytes: bytes) -> bytes:
    """The first third of a JPEG: a truncated download."""
    return original_bytes[: len(original_bytes) // 3]
