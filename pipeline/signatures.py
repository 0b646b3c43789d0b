"""Pure functions from an image file to the signature the gate compares.

One read of the bytes (SHA-256 of them) and one decode at reduced size: for JPEG, Pillow's
``draft`` lets libjpeg scale by 1/2, 1/4 or 1/8 inside the DCT, so a 1920x1200 photo is
decoded straight to 240x150 and never exists at full size in memory. EXIF orientation is
applied, so a copy stored sideways with an Orientation tag looks like the original. From
that small image come:

- ``mean`` and ``rms`` per band (0..255): the statistics of the article's method;
- ``thumb``: a THUMB x THUMB grayscale thumbnail, squashed to a square so that rotating the
  photo rotates the thumbnail exactly; the confirm step computes a true root-mean-square
  pixel difference on it;
- ``phash``: a 64-bit DCT hash of the thumbnail (low 8x8 frequencies against their median),
  cheap to compare by Hamming distance over a whole store at once.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import io
import math
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.formats import FORMATS

THUMB = 32                 # side of the normalised thumbnail (pixels)
DRAFT_SIZE = (128, 128)    # ask libjpeg for the smallest DCT scale that keeps this many pixels
HASH_SIDE = 8              # the hash keeps the HASH_SIDE x HASH_SIDE lowest frequencies

_heif_registered = False


def one_decoder_thread() -> None:
    """In a pool with a signing worker per core, a HEIC decoded on one thread costs less
    CPU than on libheif's default four (738 against 809 ms for 12 MP, docs/performance.md)."""
    register_heif()
    for module in ("pillow_heif", "pi_heif"):
        try:
            importlib.import_module(module).options.DECODE_THREADS = 1
        except (ImportError, AttributeError):
            continue
        return


def register_heif() -> None:
    """iPhones send HEIC: teach Pillow to open it (once per process).

    pillow-heif where it has wheels; pi-heif, its decoder-only sibling, on Raspberry Pis
    (32-bit Raspberry Pi OS has no pillow-heif wheel; see pyproject.toml). Both wrap
    libheif and libde265; their bundled versions differ, and so may the colour conversion
    by a fraction of a level (checked: the same perceptual hash, band means within 0.01).
    """
    global _heif_registered
    if not _heif_registered:
        for module in ("pillow_heif", "pi_heif"):
            try:
                opener = importlib.import_module(module).register_heif_opener
            except ImportError:
                continue
            opener()
            break
        _heif_registered = True


class NotAnImage(Exception):
    """Raised when bytes cannot be used as a photo; the message is the one-line reason."""


@dataclass(frozen=True)
class Signature:
    sha256: str
    size: int                       # bytes
    format: str                     # Pillow's format name: JPEG, PNG, HEIF, ...
    width: int                      # full-size pixels, after EXIF orientation
    height: int
    mean: tuple[float, float, float]
    rms: tuple[float, float, float]
    phash: int                      # unsigned 64-bit
    thumb: bytes                    # THUMB*THUMB grayscale bytes, row-major

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def thumb_array(self) -> np.ndarray:
        return np.frombuffer(self.thumb, dtype=np.uint8).reshape(THUMB, THUMB)

    @property
    def grid(self) -> bytes:
        """The coarse grid the candidate search uses (``grid_bytes``)."""
        return grid_bytes(self.thumb_array())


def sign_file(path: Path, max_pixels: int) -> Signature:
    """Read a file once and sign it; raises NotAnImage with the reason when it is not one
    (or when it has more than ``max_pixels``, the ``[gate] max_megapixels`` setting).

    The file is never held whole: Pillow decodes from it while ``_HashingReader`` hashes
    the bytes as they go by, and whatever the decoder did not read is hashed at the end.
    """
    try:
        with open(path, "rb") as handle:
            reader = _HashingReader(handle)
            if reader.size == 0:
                raise NotAnImage("empty file")
            decoded = decode_stored(reader, max_pixels)
            digest = reader.finish()
    except OSError as exc:
        raise NotAnImage(f"cannot read file: {exc.strerror or exc}") from exc
    return _signature(decoded, digest, reader.size)


class _HashingReader(io.RawIOBase):
    """A read-only file that feeds SHA-256 with every byte in order as it is first read.

    Decoders seek (back to re-read a header, or ahead): bytes read again are not hashed
    twice, and a gap skipped ahead is read and hashed before the jump.
    """

    BLOCK = 1024 * 1024

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.sha256()
        self.hashed = 0         # bytes [0, hashed) are in the digest
        self.size = os.fstat(handle.fileno()).st_size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.handle.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.handle.seek(offset, whence)

    def readinto(self, buffer) -> int:
        start = self.handle.tell()
        if start > self.hashed:
            self._hash_up_to(start)
        count = self.handle.readinto(buffer)
        if count and start + count > self.hashed:
            self.digest.update(memoryview(buffer)[self.hashed - start:count])
            self.hashed = start + count
        return count

    def _hash_up_to(self, end: int) -> None:
        position = self.handle.tell()
        self.handle.seek(self.hashed)
        while self.hashed < end:
            block = self.handle.read(min(self.BLOCK, end - self.hashed))
            if not block:
                break
            self.digest.update(block)
            self.hashed += len(block)
        self.handle.seek(position)

    def finish(self) -> str:
        """The SHA-256 of the whole file (the rest read now, if the decoder stopped early)."""
        self._hash_up_to(self.size)
        return self.digest.hexdigest()


def sign_bytes(data: bytes, max_pixels: int) -> Signature:
    """Sign an encoded image held in memory."""
    digest = hashlib.sha256(data).hexdigest()
    return _signature(decode_stored(data, max_pixels), digest, len(data))


def _signature(decoded: "Decoded", digest: str, size: int) -> Signature:
    """The thumbnail is made in the frame the pixels were STORED in (where a reduced
    decode's partial last block row and column really are last), then turned by the EXIF
    orientation: the same thumbnail as the upright pixels would give, on every size."""
    mean, rms = band_statistics(decoded.image)
    stored_width, stored_height = decoded.stored_size
    thumb = orient(make_thumb(decoded.image, decoded.stored_size), decoded.orientation)
    width, height = ((stored_height, stored_width) if decoded.orientation in _SWAPPING
                     else (stored_width, stored_height))
    return Signature(
        sha256=digest, size=size, format=decoded.format, width=width, height=height,
        mean=mean, rms=rms, phash=phash(thumb), thumb=thumb.tobytes(),
    )


_LEVELS = np.arange(256, dtype=np.int64)
_MOMENTS = np.stack([np.ones(256, dtype=np.int64), _LEVELS, _LEVELS * _LEVELS], axis=1)


def band_statistics(image: Image.Image) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-band mean and root-mean-square (0..255) of an RGB image, rounded to 4 places.

    The same figures as ``ImageStat.Stat`` (sums over the C histogram, exact in integers)
    without its Python loops over 768 histogram bins, which cost more than the rest of
    the statistics on a 240x150 draft decode.
    """
    histogram = np.asarray(image.histogram()[:768], dtype=np.int64).reshape(3, 256)
    # one product gives each band's pixel count, sum and sum of squares
    moments = (histogram @ _MOMENTS).tolist()
    mean = tuple(round(total / pixels, 4) for pixels, total, _ in moments)
    rms = tuple(round(math.sqrt(squares / pixels), 4) for pixels, _, squares in moments)
    return mean, rms


@dataclass(frozen=True)
class Decoded:
    """A reduced decode as the pixels are stored (EXIF orientation NOT applied yet)."""
    image: Image.Image              # RGB
    format: str
    stored_size: tuple[int, int]    # full-size pixels as stored
    orientation: int                # EXIF Orientation 1..8 (1 = upright)


# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose)
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
_SWAPPING = (5, 6, 7, 8)            # orientations that put the picture on its side


def decode_stored(data, max_pixels: int) -> Decoded:
    """Decode at the smallest size that serves, as stored; raises NotAnImage.

    ``data``: the encoded bytes, or a binary file to decode from (``sign_file``)."""
    register_heif()
    if not data:
        raise NotAnImage("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(data if hasattr(data, "read") else io.BytesIO(data))
            image_format = image.format or "unknown"
            if image_format not in FORMATS:
                raise NotAnImage(f"unsupported image format {image_format}")
            width, height = image.size
            if width * height > max_pixels:
                raise NotAnImage(f"decompression bomb: {width}x{height} pixels is more than "
                                 f"the limit of {max_pixels}")
            if image_format in ("JPEG", "MPO"):
                # libjpeg's reduced (DCT-scaled) decode of the same pixels; a HEIF's draft
                # would pick the file's embedded thumbnail (iPhones write 320 px ones),
                # pixels of their own that measure above thumb_rms from the photo itself
                image.draft("RGB", DRAFT_SIZE)
            orientation = image.getexif().get(0x0112, 1)
            if orientation not in _UPRIGHT:
                orientation = 1
            image = to_rgb(image)
    except NotAnImage:
        raise
    except UnidentifiedImageError:
        raise NotAnImage("not an image (no known image format in the bytes)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NotAnImage(f"decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
            MemoryError, ZeroDivisionError, struct.error) as exc:
        raise NotAnImage(f"corrupt or truncated image: {exc}") from None
    return Decoded(image, image_format, (width, height), orientation)


def decode_reduced(data, max_pixels: int) -> tuple[Image.Image, str, int, int]:
    """Decode at reduced size and turn upright; return (RGB image, format, full w, full h)
    with the full size after EXIF orientation (what previews show)."""
    decoded = decode_stored(data, max_pixels)
    width, height = decoded.stored_size
    image = decoded.image
    if decoded.orientation in _UPRIGHT:
        image = image.transpose(_UPRIGHT[decoded.orientation])
    if decoded.orientation in _SWAPPING:
        width, height = height, width
    return image, decoded.format, width, height


def orient(thumb: np.ndarray, orientation: int) -> np.ndarray:
    """A stored-frame thumbnail turned upright by EXIF ``orientation`` (exact: the square
    thumbnail's pixels are only moved)."""
    if orientation not in _UPRIGHT:
        return thumb
    return np.asarray(Image.fromarray(thumb, "L").transpose(_UPRIGHT[orientation]))


def to_rgb(image: Image.Image) -> Image.Image:
    """Bring any mode (CMYK, 16-bit, palette with transparency, ...) to 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(array * (255.0 / peak), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "F":
        gray = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    image.load()
    return image


def make_thumb(image: Image.Image, full_size: tuple[int, int] | None = None) -> np.ndarray:
    """THUMB x THUMB grayscale (uint8), squashed to a square, by exact area averaging.

    Exact area weights (not Pillow's resampling) keep the thumbnail the same whichever way
    the picture reached us: a JPEG decoded at 1/8 inside the DCT, a PNG decoded in full and
    box-reduced, or a copy already downscaled to 1024 px all average the same regions.
    ``full_size`` is the size before any reduction: a reduced image whose last row or
    column of blocks is partial (1023 / 8) then still maps onto the right regions.
    """
    width, height = full_size or image.size
    gray = image.convert("L")
    factor = max(1, min(gray.width, gray.height) // (4 * THUMB))
    if factor > 1:  # integer box reduction first: cheap, exact for whole blocks
        gray = gray.reduce(factor)
    pixels = np.asarray(gray, dtype=np.float32)
    rows = _area_weights(height, pixels.shape[0], THUMB)
    columns = _area_weights(width, pixels.shape[1], THUMB)
    thumb = rows @ pixels @ columns.T
    return np.clip(np.rint(thumb), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=256)
def _area_weights(full: int, cells: int, size_out: int) -> np.ndarray:
    """Weights that average ``cells`` reduced pixels (spanning ``full`` original ones)
    into ``size_out`` equal spans of the original: row i covers [i, i+1) * full/size_out."""
    step = round(full / cells) if cells > 1 else full
    cell_edges = np.minimum(np.arange(cells + 1) * step, full).astype(np.float64)
    cell_edges[-1] = full
    if step * (cells - 1) >= full:  # not a whole-block reduction: spread evenly
        cell_edges = np.linspace(0, full, cells + 1)
    out_edges = np.linspace(0, full, size_out + 1)
    starts, ends = out_edges[:-1, None], out_edges[1:, None]
    overlap = np.clip(np.minimum(ends, cell_edges[None, 1:]) -
                      np.maximum(starts, cell_edges[None, :-1]), 0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def _dct_matrix(size: int) -> np.ndarray:
    k = np.arange(size)[:, None]
    n = np.arange(size)[None, :]
    matrix = np.cos(np.pi * (2 * n + 1) * k / (2 * size)) * np.sqrt(2.0 / size)
    matrix[0, :] = np.sqrt(1.0 / size)
    return matrix


_DCT = _dct_matrix(THUMB)
_BIT_WEIGHTS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)
_MIDDLE = (HASH_SIDE * HASH_SIDE - 1) // 2


def phash(thumb: np.ndarray) -> int:
    """64-bit DCT hash: the 8x8 lowest frequencies, each bit = above the median (DC left out)."""
    coefficients = _DCT @ thumb.astype(np.float64) @ _DCT.T
    low = coefficients[:HASH_SIDE, :HASH_SIDE].flatten()
    # the median of the 63 values without DC is the 32nd smallest: np.partition finds it
    # exactly, at a third of np.median's cost; the bits packed first to last, high to low
    median = np.partition(low[1:], _MIDDLE)[_MIDDLE]
    return int.from_bytes(np.packbits(low > median).tobytes(), "big")


def phash_many(thumbs: np.ndarray) -> np.ndarray:
    """``phash`` of a stack of thumbnails at once (uint64 array)."""
    coefficients = _DCT @ thumbs.astype(np.float64) @ _DCT.T
    low = coefficients[:, :HASH_SIDE, :HASH_SIDE].reshape(len(thumbs), -1)
    median = np.partition(low[:, 1:], _MIDDLE, axis=1)[:, _MIDDLE:_MIDDLE + 1]  # as phash
    bits = (low > median).astype(np.uint64)
    return (bits * _BIT_WEIGHTS).sum(axis=1, dtype=np.uint64)


GRID = 4                   # the coarse grid: GRID x GRID block means of the thumbnail
TURNS = 8                  # the dihedral transforms: 4 rotations, then 4 of the mirror image


def turn(thumbs: np.ndarray, number: int) -> np.ndarray:
    """Dihedral transform ``number`` (0..7) of a square image or a stack of them (last
    two axes): 0..3 = turned 0/90/180/270 degrees counter-clockwise, 4..7 = mirrored
    left to right, then turned the same. Odd numbers swap the sides."""
    if number >= 4:
        thumbs = thumbs[..., :, ::-1]
    return np.rot90(thumbs, number % 4, axes=(-2, -1))


def coarse(thumbs: np.ndarray, side: int) -> np.ndarray:
    """Block means (float32) of THUMB x THUMB thumbnails down to ``side`` x ``side``:
    exact area averaging, so it commutes with every ``turn``."""
    factor = THUMB // side
    stack = np.asarray(thumbs, dtype=np.float32).reshape(-1, side, factor, side, factor)
    return stack.mean(axis=(2, 4), dtype=np.float32).reshape(
        np.shape(thumbs)[:-2] + (side, side))


def grid_bytes(thumb: np.ndarray) -> bytes:
    """The stored coarse grid: GRID x GRID block SUMS of the uint8 thumbnail as little-
    endian uint16 (exact; the index divides by the block area)."""
    factor = THUMB // GRID
    sums = thumb.astype(np.uint32).reshape(GRID, factor, GRID, factor).sum(axis=(1, 3))
    return sums.astype("<u2").tobytes()


def grids_from_bytes(blobs: list[bytes]) -> np.ndarray:
    """(n, GRID, GRID) float32 block means from stored ``grid_bytes``."""
    sums = np.frombuffer(b"".join(blobs), dtype="<u2").reshape(len(blobs), GRID, GRID)
    return sums.astype(np.float32) / float((THUMB // GRID) ** 2)


def to_signed64(value: int) -> int:
    """SQLite integers are signed: store the unsigned hash bit-for-bit."""
    return value - (1 << 64) if value >= (1 << 63) else value


def to_unsigned64(value: int) -> int:
    return value + (1 << 64) if value < 0 else value
