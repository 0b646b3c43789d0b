#!/usr/bin/env python3
"""The "decode floor": the wall time to merely open and decode every file once, at 1/8
scale for JPEG (Pillow ``draft``: libjpeg's DCT scaling; Huffman decoding still runs in
full), fully for other formats, on all cores. No duplicate finder that reads pixels can
scan a folder faster than this.

Usage: python bench/decode_floor.py FOLDER [--workers N] [--repeat R] [--process]

Two ways to measure it:

* in this process (``decode_floor_stats``): the pool is started and warmed up before the
  clock starts; the time covers only the decoding (imap_unordered, chunksize 8);
* as a whole process, measured the way the product's cold resweep is (``--process``,
  ``decode_floor_process``): a fresh interpreter that imports Pillow (and pillow-heif on
  the first HEIC), walks the folder, starts a cold pool of the product's kind
  (pipeline/catalog.py: forked on Linux, one worker per core), decodes every file once exactly as the product's
  signing does (``draft("RGB", (128, 128))`` for JPEG, so libjpeg picks the same DCT
  scale; other formats in full) and exits; the wall time is taken by the parent from
  start to exit. That is the floor for a whole ``frame-ingest resweep``: anything the
  product takes beyond it is its own cost (numpy and its own imports, hashing, the
  thumbnail, SQLite, the duplicate search).

The first repeat may include disk reads; later repeats read from the page cache.
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


DRAFT_REQUEST = (128, 128)   # pipeline/signatures.py DRAFT_SIZE: the same DCT scale
_heif_ready = False


def decode_like_product(path: str) -> float:
    """Open and decode one file the way the product's signing decodes it (no EXIF
    transpose, no statistics, no hashing). Returns the CPU seconds it took."""
    global _heif_ready
    c0 = time.process_time()
    if not _heif_ready and path.lower().endswith((".heic", ".heif")):
        _init()
        _heif_ready = True
    with Image.open(path) as im:
        im.draft("RGB", DRAFT_REQUEST)
        im.load()
    return time.process_time() - c0


def _walk(folder: str) -> list[str]:
    found = []
    for directory, folders, files in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTS:
                found.append(os.path.join(directory, name))
    return found


def _process_main(folder: str, workers: int) -> None:
    """The body of the ``--process`` floor (runs in the fresh interpreter)."""
    paths = _walk(folder)
    cpu = 0.0
    method = "fork" if sys.platform.startswith("linux") else "spawn"  # as pipeline/catalog.py
    with mp.get_context(method).Pool(workers) as pool:
        for seconds in pool.imap_unordered(decode_like_product, paths, chunksize=4):
            cpu += seconds
    print(f"FLOOR {len(paths)} {cpu:.4f}")


def decode_floor_process(folder: str | os.PathLike, workers: int | None = None) -> dict:
    """Wall seconds of a whole fresh process that decodes every image under ``folder``
    once on a cold pool (see the module docstring): {"seconds", "cpu_seconds" (decoding,
    summed over the workers), "process_cpu" (user + system CPU of the whole process tree:
    interpreter start, imports, pool, decoding), "files"}."""
    import resource  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    workers = workers or os.cpu_count() or 1
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(folder),
                             "--workers", str(workers), "--process-child"],
                            capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _, files, cpu = result.stdout.split()
    return {"seconds": wall, "cpu_seconds": float(cpu), "files": float(files),
            "process_cpu": (after.ru_utime - before.ru_utime) +
            (after.ru_stime - before.ru_stime)}


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
    ap.add_argument("--process", action="store_true",
                    help="measure a whole fresh process with a cold pool (the product's way)")
    ap.add_argument("--process-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.process_child:
        _process_main(a.folder, a.workers or os.cpu_count() or 1)
        return 0
    if a.process:
        runs = [decode_floor_process(a.folder, a.workers) for _ in range(max(1, a.repeat))]
        times = [r["seconds"] for r in runs]
        print(f"decode floor (whole process, cold pool): {int(runs[0]['files'])} files: "
              f"median {sorted(times)[len(times) // 2]:.2f} s; runs: "
              f"{', '.join(f'{t:.2f}' for t in times)}; CPU "
              f"{1000 * min(r['cpu_seconds'] for r in runs) / runs[0]['files']:.2f} ms/file")
        return 0
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
