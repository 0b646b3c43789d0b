"""The bad-input corpus: every odd file a family (or a stranger) can send gets a defined
outcome, promoted or rejected with a reason, and one gate run handles them all.

The corpus is generated here. Each entry is staged as a source would stage it (with the
name the sender gave, which may be hostile), then one real ``frame-ingest gate`` decides
them all; the table says where each must end up and why.
"""

from __future__ import annotations

import io
import random
import sqlite3
import struct
import unicodedata
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from pipeline.items import Provenance
from pipeline.staging import Staging
from tests import images
from tests.support import crashes, scenarios
from tests.test_reliability_names import problems_with


def small(seed: int) -> Image.Image:
    return images.resized(images.photo(seed), long_edge=200)


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def png_bomb(side: int = 30_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels that compresses to a few kilobytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + \
            struct.pack(">I", zlib.crc32(kind + body))
    row = b"\0" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + \
        chunk(b"IEND", b"")


def animated(image_format: str, seed: int) -> bytes:
    frames = [small(seed).rotate(angle) for angle in (0, 3, 6)]
    return encoded(frames[0], image_format, save_all=True, append_images=frames[1:],
                   duration=200, loop=0)


def sixteen_bit_png_with_transparency(seed: int) -> bytes:
    gray = np.asarray(small(seed).convert("L"), dtype=np.uint16) * 257
    image = Image.fromarray(gray)                   # mode I;16
    assert image.mode == "I;16"
    return encoded(image, "PNG", transparency=0)


def palette_png_with_transparency(seed: int) -> bytes:
    image = small(seed).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return encoded(image, "PNG", transparency=0)


def broken_exif_jpeg(seed: int) -> bytes:
    """A JPEG whose APP1 segment says Exif and holds garbage (a bad TIFF header)."""
    good = images.jpeg(small(seed))
    garbage = b"Exif\0\0" + b"MM\0\x2a\xff\xff\xff\xf0" + bytes(range(200))
    segment = b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage
    return good[:2] + segment + good[2:]


@dataclass(frozen=True)
class Case:
    name: str            # as the sender named it
    data: bytes
    folder: str          # pictures | rejected
    reason: str = ""     # part of the recorded reason (rejected only)
    suffix: str = ""     # the name on disk must end so (promoted only)


def corpus() -> list[Case]:
    photo_bytes = images.jpeg(small(901))
    return [
        Case("empty.jpg", b"", "rejected", "empty file"),
        Case("truncated.jpg", photo_bytes[: len(photo_bytes) // 3], "rejected", "truncated"),
        Case("random.jpg", random.Random(3).randbytes(5000), "rejected", "not an image"),
        Case("page.jpg", b"<!DOCTYPE html><html><body><img src=x></body></html>",
             "rejected", "not an image"),
        Case("bomb.png", png_bomb(), "rejected", "decompression bomb"),
        Case("animated.gif", animated("GIF", 902), "pictures", suffix=".gif"),
        Case("animated.webp", animated("WEBP", 903), "pictures", suffix=".webp"),
        Case("cmyk.jpg", encoded(small(904).convert("CMYK"), "JPEG"), "pictures", suffix=".jpg"),
        Case("sixteen.png", sixteen_bit_png_with_transparency(905), "pictures", suffix=".png"),
        Case("palette.png", palette_png_with_transparency(906), "pictures", suffix=".png"),
        Case("broken exif.jpg", broken_exif_jpeg(907), "pictures", suffix=".jpg"),
        Case("IMG_0001.HEIC", images.heic(small(908)), "pictures", suffix=".HEIC"),
        Case("../../../../etc/cron.d/evil.jpg", images.jpeg(small(909)), "pictures",
             suffix="evil.jpg"),
        Case("/etc/passwd", images.jpeg(small(910)), "pictures", suffix="passwd.jpg"),
        Case("C:\\Windows\\win.ini", images.jpeg(small(911)), "pictures", suffix="win.ini.jpg"),
        Case("bell\x07tab\tnul\x00esc\x1b.jpg", images.jpeg(small(912)), "pictures",
             suffix="belltabnulesc.jpg"),
        Case("\u00e9" * 150 + ".jpg", images.jpeg(small(913)), "pictures", suffix=".jpg"),
        Case("Cafe\u0301.jpg", images.jpeg(small(914)), "pictures", suffix="Caf\u00e9.jpg"),
        Case("Caf\u00e9.jpg", images.jpeg(small(915)), "pictures", suffix="Caf\u00e9 (2).jpg"),
        Case("CON.jpg", images.jpeg(small(916)), "pictures", suffix="_CON.jpg"),
        Case("lpt1", images.jpeg(small(917)), "pictures", suffix="_lpt1.jpg"),
        Case("..", images.jpeg(small(918)), "pictures", suffix="photo.jpg"),
        Case("photo.txt", images.jpeg(small(919)), "pictures", suffix="photo.txt.jpg"),
    ]


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return corpus()


def test_every_bad_input_gets_its_defined_outcome_and_the_run_goes_on(home, cases):
    staging = Staging(home.state_dir / "staging")
    for number, case in enumerate(cases):
        staging.stage(io.BytesIO(case.data), Provenance("folder", f"case-{number}", case.name))
    trial = crashes.Trial(0, home, [], "gate")
    # animated GIF and WebP are filed as they are here (not converted for the frame)
    trial.config_path.write_text('[library]\nframe_formats = ["JPEG", "PNG", "HEIF", "GIF", '
                                 '"WEBP"]\n')
    trial.sent = [scenarios.Input(case.name, case.data, "bad") for case in cases]
    trial.before = crashes.snapshot(home.path)
    result = trial.run("gate")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    with sqlite3.connect(home.state_dir / "store.sqlite3") as connection:
        decided = {origin: (folder, path, reason or "") for origin, folder, path, reason in
                   connection.execute("SELECT origin, folder, path, reason FROM decisions")}
    roots = {"pictures": home.pictures, "rejected": home.rejected}
    for number, case in enumerate(cases):
        folder, path, reason = decided[f"folder:case-{number}"]
        where = f"{case.name!r}: {folder}/{path} ({reason})"
        assert folder == case.folder, where
        assert case.reason in reason, where
        assert path.endswith(case.suffix), where
        on_disk = roots[folder] / path
        assert on_disk.read_bytes() == case.data, where
        assert on_disk.resolve().parent in (roots[folder].resolve(),
                                            roots[folder].resolve() / path.split("/")[0]), where
        assert problems_with(on_disk.name) == [], where
        assert unicodedata.is_normalized("NFC", path), where
    assert crashes.check_invariant(trial) == []
