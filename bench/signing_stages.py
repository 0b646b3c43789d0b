#!/usr/bin/env python3
"""What signing one library file costs beyond decoding it, in one process, stage by stage.

Usage: python bench/signing_stages.py FOLDER [--files N] [--repeat R]

For up to N JPEG files under FOLDER (a bench/corpus.py folder), read fresh from the page
cache each round: the decode floor exactly as bench/decode_floor.py decodes
(``decode_like_product``), the product's whole per-file work
(``catalog.sign_library_file``: read, SHA-256, decode, EXIF orientation, statistics,
thumbnail, hash), and, on the files already decoded, each stage of ``_signature`` alone.
CPU time per file (``time.process_time``), the best of R rounds, and the ratio of the two
per-file figures: the part of a cold resweep's cost the worker pool adds beyond the floor
(the rest is the process: imports, the walk, SQLite, the search).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.decode_floor import decode_like_product  # noqa: E402
from pipeline import catalog, signatures  # noqa: E402

MAX_PIXELS = 10**9


def best_per_file(function, items, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for item in items:
            function(item)
        best = min(best, time.process_time() - started)
    return best / len(items) * 1000.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args(argv)
    root = Path(arguments.folder)
    paths = sorted(path for path in root.rglob("*.jpg"))[:arguments.files]
    if not paths:
        raise SystemExit(f"no .jpg files under {root}")
    signatures.one_decoder_thread()
    jobs = [(str(root), str(path.relative_to(root)), path.stat().st_size, 0, MAX_PIXELS)
            for path in paths]
    floor = best_per_file(lambda path: decode_like_product(str(path)), paths, arguments.repeat)
    signing = best_per_file(catalog.sign_library_file, jobs, arguments.repeat)
    datas = [path.read_bytes() for path in paths]
    decoded = [signatures.decode_stored(data, MAX_PIXELS) for data in datas]
    thumbs = [signatures.make_thumb(item.image, item.stored_size) for item in decoded]
    stages = [
        ("SHA-256 of the bytes", lambda data: hashlib.sha256(data).hexdigest(), datas),
        ("decode_stored (decode, EXIF, RGB)",
         lambda data: signatures.decode_stored(data, MAX_PIXELS), datas),
        ("band statistics", lambda item: signatures.band_statistics(item.image), decoded),
        ("thumbnail", lambda item: signatures.make_thumb(item.image, item.stored_size),
         decoded),
        ("perceptual hash", signatures.phash, thumbs),
        ("_signature (statistics, thumbnail, hash)",
         lambda item: signatures._signature(item, "0" * 64, 1), decoded),
    ]
    size = sum(len(data) for data in datas) / len(datas) / 1024
    print(f"# {len(paths)} JPEG files under {root}, {size:.0f} KiB on average; "
          f"CPU ms per file, best of {arguments.repeat}; load {os.getloadavg()[0]:.1f}")
    print(f"decode floor (decode_floor.decode_like_product)   {floor:7.3f} ms")
    print(f"signing (catalog.sign_library_file)                {signing:7.3f} ms   "
          f"ratio {signing / floor:.2f}x")
    for name, function, items in stages:
        print(f"  {name:48s} {best_per_file(function, items, arguments.repeat):7.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
