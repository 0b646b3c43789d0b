#!/usr/bin/env python3
"""What edits the `similar` method leaves alone on purpose do to its distances (issue 12).

For the originals of a bench/corpus.py folder, makes each edit below, signs original and
edit with the product's signer and prints, per edit, the confirm step's figures: thumbnail
RMS (0..1, at 32 x 32), brightness difference, the largest band-mean difference (both as
a fraction of 255), and how many edits the default settings would call duplicates.

    python bench/corpus.py /tmp/corpus --originals 40 --seed 1
    python bench/out_of_scope.py /tmp/corpus [--originals 40]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps  # noqa: E402

from pipeline.config import parse_config  # noqa: E402
from pipeline.signatures import sign_bytes  # noqa: E402


def _crop(image: Image.Image, fraction: float, keep_aspect: bool) -> Image.Image:
    width, height = image.size
    dx, dy = width * fraction / 2, height * fraction / 2 if keep_aspect else 0
    return image.crop((dx, dy, width - dx, height - dy))


def _sepia(image: Image.Image) -> Image.Image:
    gray = np.asarray(image.convert("L"), np.float32)
    tint = np.stack([gray * 1.07, gray * 0.74, gray * 0.43], axis=-1) + [20, 20, 20]
    return Image.fromarray(np.clip(tint, 0, 255).astype(np.uint8), "RGB")


def _caption(image: Image.Image) -> Image.Image:
    edited = image.copy()
    draw = ImageDraw.Draw(edited)
    width, height = image.size
    draw.rectangle((0, height * 0.88, width, height), fill=(0, 0, 0))
    draw.text((width * 0.05, height * 0.91), "Happy birthday Grandma! " * 3, fill="white")
    return edited


def _sticker(image: Image.Image) -> Image.Image:
    edited = image.copy()
    width, height = image.size
    ImageDraw.Draw(edited).ellipse((width * 0.7, height * 0.1, width * 0.85, height * 0.34),
                                   fill=(255, 210, 0))
    return edited


EDITS = {
    "crop 5 % each side (same aspect)": lambda image: _crop(image, 0.10, True),
    "crop 10 % off the width": lambda image: _crop(image, 0.10, False),
    "grayscale": lambda image: image.convert("L").convert("RGB"),
    "sepia filter": _sepia,
    "contrast +20 %": lambda image: ImageEnhance.Contrast(image).enhance(1.2),
    "saturation +30 %": lambda image: ImageEnhance.Color(image).enhance(1.3),
    "blur (radius 3)": lambda image: image.filter(ImageFilter.GaussianBlur(3)),
    "sharpen": lambda image: image.filter(ImageFilter.SHARPEN),
    "caption bar (12 % of the height)": _caption,
    "sticker (15 % of the width)": _sticker,
    "white border 5 %": lambda image: ImageOps.expand(
        image.resize((round(image.width * 0.9), round(image.height * 0.9))),
        border=(round(image.width * 0.05), round(image.height * 0.05)), fill="white"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--originals", type=int, default=40)
    arguments = parser.parse_args(argv)
    settings = parse_config({}).dedupe
    labels = json.loads((arguments.corpus / "labels.json").read_text())["files"]
    names = [f["name"] for f in labels if f["kind"] == "original"][:arguments.originals]
    figures = {edit: [] for edit in EDITS}
    for name in names:
        data = (arguments.corpus / name).read_bytes()
        original = sign_bytes(data, 10**9)
        image = Image.open(io.BytesIO(data)).convert("RGB")
        for edit, make in EDITS.items():
            buffer = io.BytesIO()
            make(image).save(buffer, "JPEG", quality=90)
            edited = sign_bytes(buffer.getvalue(), 10**9)
            difference = (original.thumb_array().astype(np.float64) -
                          edited.thumb_array().astype(np.float64))
            rms = float(np.sqrt(np.mean(difference ** 2)) / 255)
            luma = float(abs(difference.mean()) / 255)
            band = float(np.max(np.abs(np.subtract(original.mean, edited.mean))) / 255)
            aspect = abs((original.width / original.height) / (edited.width / edited.height) - 1)
            duplicate = (rms <= settings.thumb_rms and luma <= settings.luma_delta and
                         band <= settings.mean_delta and aspect <= 0.03)
            figures[edit].append((rms, luma, band, duplicate))
    print(f"{len(names)} originals of {arguments.corpus}; limits: thumb RMS "
          f"{settings.thumb_rms}, brightness {settings.luma_delta}, band mean "
          f"{settings.mean_delta}")
    print(f"{'edit':36} {'thumb RMS min / median':>24} {'brightness median':>18} "
          f"{'band mean median':>17} {'called duplicate':>17}")
    for edit, rows in figures.items():
        rms, luma, band, duplicate = (np.array(column) for column in zip(*rows))
        print(f"{edit:36} {rms.min():>11.4f} / {np.median(rms):<10.4f} "
              f"{np.median(luma):>18.4f} {np.median(band):>17.4f} "
              f"{int(duplicate.sum()):>10} of {len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
