"""Real encoded test videos, made on the fly with PyAV: tiny clips and their variants.

``clip(path, seed)`` films a photo-like scene (``tests/images.painting``) with a slow pan
and a zoom, so frames at different times differ as a real phone clip's do. ``start``
shifts the clip later in the same "take" (a different clip of the same scene). Variants
are made by encoding the same frames again: another codec or bitrate, another size, turned
pixels, or a rotation tag (display matrix) only.
"""

from __future__ import annotations

import functools
import io
import struct
import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from tests.images import painting

FPS = 15


@functools.lru_cache(maxsize=8)
def _scene(seed: int) -> Image.Image:
    return painting(seed, (640, 400))


def frames(seed: int, seconds: float = 2.0, start: float = 0.0, size=(160, 120)):
    """RGB frames (PIL) of the take: a window panning right across the scene."""
    scene = _scene(seed)
    count = int(round(seconds * FPS))
    for number in range(count):
        moment = start + number / FPS
        left = int(30 + 40 * moment)
        top = int(20 + 10 * moment)
        window = scene.crop((left, top, left + 320, top + 240))
        yield window.resize(size, Image.Resampling.BILINEAR)


def encode(path: Path, pictures, *, codec: str = "libx264", bit_rate: int | None = None,
           container_format: str | None = None, rotation: int = 0,
           metadata: dict | None = None, fps: int = FPS, options: dict | None = None,
           container_options: dict | None = None) -> Path:
    """Encode ``pictures`` (PIL images, all one size; or an iterator) into ``path``."""
    pictures = iter(pictures)
    first = next(pictures)
    width, height = first.size
    container_options = dict(container_options or {})
    if metadata:
        container_options["movflags"] = " ".join(
            filter(None, [container_options.get("movflags", ""), "use_metadata_tags"]))
    with av.open(str(path), mode="w", format=container_format,
                 options=container_options) as output:
        if metadata:
            output.metadata.update(metadata)
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        if bit_rate:
            stream.bit_rate = bit_rate
        options = dict(options or {})
        if codec == "libx265":
            options.setdefault("x265-params", "log-level=none")
        if options:
            stream.options = options
        if rotation:
            stream.set_display_rotation(rotation)
        for picture in itertools.chain([first], pictures):
            frame = av.VideoFrame.from_ndarray(np.asarray(picture.convert("RGB")),
                                               format="rgb24")
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


def clip(path: Path, seed: int = 1, *, seconds: float = 2.0, start: float = 0.0,
         size=(160, 120), turn: int = 0, **encoding) -> Path:
    """A clip of the take ``seed``; ``turn`` quarter turns counter-clockwise of the pixels."""
    pictures = frames(seed, seconds, start, size)
    if turn:
        pictures = [picture.rotate(90 * turn, expand=True) for picture in pictures]
    return encode(path, pictures, **encoding)


def tiny_frames(count: int, side: int = 16):
    """``count`` frames of ``side`` pixels whose brightness rises with time (0..255)."""
    for number in range(count):
        level = int(255 * number / max(1, count - 1))
        yield Image.new("RGB", (side, side), (level, level, level))


def audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An M4A-like MP4 with one AAC track and no video."""
    with av.open(str(path), mode="w", format="mp4") as output:
        stream = output.add_stream("aac", rate=22050)
        samples = int(22050 * seconds)
        tone = (np.sin(np.arange(samples) / 10.0) * 0.2).astype(np.float32)
        for start in range(0, samples, 1024):
            piece = tone[start:start + 1024]
            if len(piece) < 1024:
                break
            frame = av.AudioFrame.from_ndarray(piece[None, :], format="fltp", layout="mono")
            frame.sample_rate = 22050
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


def apple_maker_note(content_identifier: str) -> bytes:
    """An Apple maker note ("Apple iOS", big-endian IFD) holding tag 0x0011, the Live
    Photo's ContentIdentifier, as iPhones write it (offsets from the note's start)."""
    value = content_identifier.encode("ascii") + b"\0"
    header = b"Apple iOS\0" + b"\x00\x01" + b"MM"
    entries = [(0x0001, 9, 1, struct.pack(">i", 14)),          # MakerNoteVersion
               (0x0011, 2, len(value), None)]                   # ContentIdentifier
    table_end = len(header) + 2 + 12 * len(entries) + 4
    body = b""
    for tag, kind, count, inline in entries:
        field = inline if inline is not None else struct.pack(">I", table_end)
        body += struct.pack(">HHI", tag, kind, count) + field
    return header + struct.pack(">H", len(entries)) + body + b"\0\0\0\0" + value


def live_still(picture: Image.Image, content_identifier: str, *, xmp: bool = False) -> bytes:
    """A JPEG still of a Live Photo: the id in its Apple maker note (or in XMP)."""
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 15"
    options = {}
    if xmp:
        options["xmp"] = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
            '02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:apple-fi="http://ns.'
            f'apple.com/faceinfo/1.0/" apple-fi:ContentIdentifier="{content_identifier}"/>'
            '</rdf:RDF></x:xmpmeta>').encode()
    else:
        exif.get_ifd(0x8769)[0x927C] = apple_maker_note(content_identifier)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90, exif=exif, **options)
    return buffer.getvalue()


def motion_photo(picture: Image.Image, movie: bytes) -> bytes:
    """A Google motion photo: a JPEG whose XMP says MotionPhoto and gives the length of
    the MP4 appended after it (Camera:MotionPhoto + Container:Directory, and the older
    GCamera:MicroVideoOffset)."""
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
        'xmlns:Camera="http://ns.google.com/photos/1.0/camera/" '
        'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
        'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" '
        f'GCamera:MicroVideo="1" GCamera:MicroVideoVersion="1" '
        f'GCamera:MicroVideoOffset="{len(movie)}" Camera:MotionPhoto="1" '
        'Camera:MotionPhotoVersion="1"><Container:Directory><rdf:Seq>'
        '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" '
        'Item:Semantic="Primary" Item:Length="0" Item:Padding="0"/></rdf:li>'
        '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" '
        f'Item:Semantic="MotionPhoto" Item:Length="{len(movie)}" Item:Padding="0"/>'
        '</rdf:li></rdf:Seq></Container:Directory></rdf:Description></rdf:RDF>'
        '</x:xmpmeta>').encode()
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90, xmp=xmp)
    return buffer.getvalue() + movie
