#!/usr/bin/env python3
"""The "decode floor": the wall time to merely open and decode every file once, at 1/8
scale for JPEG (Pillow ``draft``: libjpeg's DCT scaling; Huffman decoding still runs in
full), fully for other formats, on all cores. No duplicate finder that reads pixels can
scan a folder faster than this.

Usage: python bench/decode_floor.py FOLDER [--workers N] [--repeat R]

The pool is started and warmed up before the clock starts; the time covers only the
decoding (imap_unordered, chunksize 8). The first repeat may include disk reads; later
repeats read from the page cache.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Iterable

from PIL import Image

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def _init() -> None:
    try:
        import pillow_heif  # noqa: PLC0415

        pillow_heif.register_heif_opener()
    except ImportError:
        pass


def _noop(_: int) -> None:
    return None


def decode_one(path: str) -> float:
    """Open and decode one file (JPEG at 1/8 scale). Returns the CPU seconds it took."""
    c0 = time.process_time()
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (im.width // 8, im.height // 8))
        im.load()
    return time.process_time() - c0


def decode_floor_stats(paths: Iterable[str | os.PathLike],
                       workers: int | None = None) -> dict[str, float]:
    """{"seconds": wall time, "cpu_seconds": CPU time summed over workers, "files": n}."""
    paths = [str(p) for p in paths]
    workers = workers or os.cpu_count() or 1
    ctx = mp.get_context("fork" if sys.platform != "win32" else "spawn")
    with ctx.Pool(workers, initializer=_init) as pool:
        pool.map(_noop, range(workers * 2))  # workers up and imported
        t0 = time.perf_counter()
        cpu = 0.0
        for c in pool.imap_unordered(decode_one, paths, chunksize=8):
            cpu += c
        wall = time.perf_counter() - t0
    return {"seconds": wall, "cpu_seconds": cpu, "files": float(len(paths))}


def decode_floor(paths: Iterable[str | os.PathLike], workers: int | None = None) -> float:
    """Seconds (wall) to decode every path once on ``workers`` processes (default: all
    cores)."""
    return decode_floor_stats(paths, workers)["seconds"]


def image_files(folder: str | os.PathLike) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="time to decode every image once (1/8 JPEG)")
    ap.add_argument("folder")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    paths = image_files(a.folder)
    if not paths:
        print(f"decode floor: no images in {a.folder}", file=sys.stderr)
        return 2
    runs = [decode_floor_stats(paths, a.workers) for _ in range(max(1, a.repeat))]
    times = [r["seconds"] for r in runs]
    best = min(times)
    cpu = min(r["cpu_seconds"] for r in runs)
    workers = a.workers or os.cpu_count() or 1
    print(f"decode floor: {len(paths)} files on {workers} workers: best {best:.2f} s "
          f"({1000 * best / len(paths):.2f} ms/file wall, {len(paths) / best:.0f} files/s; "
          f"CPU {1000 * cpu / len(paths):.2f} ms/file); "
          f"runs: {', '.join(f'{t:.2f}' for t in times)}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
