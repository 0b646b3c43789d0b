#!/usr/bin/env python3
"""Phone-size input: 12 MP JPEGs and HEICs, signing cost against each format's own floor.

    python3 bench/phone.py                      # 12 JPEG + 6 HEIC made, then measured
    python3 bench/phone.py --jpegs 20 --heics 10 --links 15 --repeat 3 --work /tmp/phone

The photos are made from the real wallpaper photographs of bench/corpus.py: a window of
one, upscaled to 4032x3024 (LANCZOS), with sensor-like grain (luminance sigma 4.5, chroma
1.5 levels) so that they compress like phone pictures: JPEG quality 92, 4:2:0 (3-5 MB);
HEIC through pillow-heif's x265 encoder at quality 60 in 512x512 grid tiles with a
320-pixel thumbnail, as an iPhone writes them (1-3 MB).

It prints, per format, in one run:

* per-file CPU (ms, median over the files, best of ``--repeat`` rounds) of the decode
  floor and of the product's signing (``catalog.sign_library_file``, the resweep's
  worker), and their ratio. JPEG's floor is the reduced decode the product asks for
  (``draft`` to the DCT scale that keeps 128 px: 1/8, 504x378). HEIC has no reduced
  decode in libjpeg's sense; the options measured are the full decode with pillow-heif's
  default decoder threads and with one, and the path the product takes: pillow-heif's
  ``draft`` decodes the embedded thumbnail (iPhones write a 320 px one) when it is a
  scaled copy of at least 128 px, with how far its 32x32 thumbnail is from the one the
  full decode gives;
* a cold resweep (``frame-ingest resweep --dry-run --json``, fresh process) of a folder of
  ``--links`` hard links to each photo, against the decode floor measured the same way
  (bench/decode_floor.py ``--process``), median of ``--repeat``; wall and CPU ratios.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402,F401  (one BLAS thread per process, before numpy loads)
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.corpus import source_photos  # noqa: E402
from bench.decode_floor import decode_floor_process  # noqa: E402
from pipeline import catalog, signatures  # noqa: E402

PHONE = (4032, 3024)
MAX_PIXELS = 100_000_000


def phone_picture(source, rng: random.Random) -> Image.Image:
    full = source.load()
    width = rng.uniform(0.6, 1.0) * min(full.width, full.height * 4 / 3)
    height = width * 3 / 4
    x, y = rng.uniform(0, full.width - width), rng.uniform(0, full.height - height)
    image = full.resize(PHONE, Image.LANCZOS, box=(x, y, x + width, y + height))
    noise = np.random.default_rng(rng.getrandbits(32))
    grain = noise.standard_normal(PHONE[::-1], dtype=np.float32) * 4.5
    chroma = noise.standard_normal((*PHONE[::-1], 3), dtype=np.float32) * 1.5
    pixels = np.asarray(image, dtype=np.float32) + grain[..., None] + chroma
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def make_set(folder: Path, jpegs: int, heics: int, seed: int) -> tuple[list[Path], list[Path]]:
    import pillow_heif  # noqa: PLC0415

    pillow_heif.register_heif_opener()
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"phone:{seed}")
    sources = [s for s in source_photos(include_skimage=False)]
    made = {"jpg": [], "heic": []}
    for number in range(jpegs + heics):
        kind = "jpg" if number < jpegs else "heic"
        path = folder / f"IMG_{number:04d}.{kind}"
        if not path.exists():
            picture = phone_picture(rng.choice(sources), rng)
            buffer = io.BytesIO()
            if kind == "jpg":
                picture.save(buffer, "JPEG", quality=92, subsampling=2)
            else:
                picture.save(buffer, "HEIF", quality=60, chroma=420, tile_size=512,
                             thumbnails=[320], enc_params={"preset": "ultrafast"})
            path.write_bytes(buffer.getvalue())
        made[kind].append(path)
    return made["jpg"], made["heic"]


def cpu_ms(function, paths, rounds: int) -> float:
    """Median per-file CPU (ms) of ``function(path)``, best of ``rounds`` rounds."""
    best = []
    for _ in range(rounds):
        costs = []
        for path in paths:
            started = time.process_time()
            function(path)
            costs.append(1000 * (time.process_time() - started))
        best.append(statistics.median(costs))
    return min(best)


def wall_ms(function, paths, rounds: int) -> float:
    best = []
    for _ in range(rounds):
        costs = []
        for path in paths:
            started = time.perf_counter()
            function(path)
            costs.append(1000 * (time.perf_counter() - started))
        best.append(statistics.median(costs))
    return min(best)


def decode_draft(path: Path) -> None:
    with Image.open(path) as image:
        image.draft("RGB", signatures.DRAFT_SIZE)
        image.load()


def decode_full(path: Path) -> None:
    with Image.open(path) as image:
        image.load()


def sign(path: Path):
    item, signature, error = catalog.sign_library_file(
        (str(path.parent), path.name, path.stat().st_size, 0, MAX_PIXELS))
    if signature is None:
        raise SystemExit(f"{path}: {error}")
    return signature


def full_decode_thumb(path: Path) -> np.ndarray:
    """The 32x32 thumbnail made from the fully decoded pixels (no thumbnail, no draft)."""
    with Image.open(path) as image:
        image.load()
        return signatures.make_thumb(image.convert("RGB"), image.size)


def heic_options(heics: list[Path], rounds: int) -> list[tuple[str, str, str]]:
    import pillow_heif  # noqa: PLC0415

    rows = []
    threads = pillow_heif.options.DECODE_THREADS
    for count in (threads, 1):
        pillow_heif.options.DECODE_THREADS = count
        rows.append((f"HEIC full decode, {count} decoder thread(s)",
                     f"{cpu_ms(decode_full, heics, rounds):.1f} ms CPU",
                     f"{wall_ms(decode_full, heics, rounds):.1f} ms wall per file"))
    pillow_heif.options.DECODE_THREADS = threads
    errors, distances = [], []
    for path in heics:
        product = sign(path)
        full = full_decode_thumb(path)
        difference = product.thumb_array().astype(np.float64) - full.astype(np.float64)
        errors.append(float(np.sqrt(np.mean(difference ** 2))) / 255)
        distances.append(bin(signatures.phash(full) ^ product.phash).count("1"))
    rows.append(("HEIC draft (embedded thumbnail) decode",
                 f"{cpu_ms(decode_draft, heics, rounds):.1f} ms CPU",
                 "pillow-heif's draft() decodes the smallest embedded thumbnail >= 128 px "
                 "(a scaled copy: same aspect, crop, rotation); full decode when none"))
    rows.append(("  its thumbnail against the full decode's", f"{max(errors):.4f} RMS",
                 f"max over the files (median {statistics.median(errors):.4f}; the confirm "
                 f"limit is 0.0065); pHash distance max {max(distances)}"))
    return rows


def cold_resweeps(work: Path, name: str, photos: list[Path], links: int,
                  repeat: int) -> list[tuple[str, str, str]]:
    from bench.run import product_resweep, write_config  # noqa: PLC0415

    pictures = work / f"links-{name}"
    pictures.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        for copy in range(links):
            target = pictures / f"{photo.stem}-{copy:03d}{photo.suffix}"
            if not target.exists():
                os.link(photo, target)
    files = len(photos) * links
    floors, colds = [], []
    for number in range(repeat):
        floors.append(decode_floor_process(pictures))
        config = write_config(work, f"phone-{name}-{number}", pictures)
        state = work / f"state-phone-{name}-{number}"
        if state.exists():
            import shutil  # noqa: PLC0415
            shutil.rmtree(state)
        colds.append(product_resweep(config))
    wall = [cold["wall"] / floor["seconds"] for cold, floor in zip(colds, floors)]
    cpu = [cold["cpu"] / floor["process_cpu"] for cold, floor in zip(colds, floors)]
    return [(f"cold resweep, {files} {name} files ({len(photos)} photos x {links} links)",
             f"{statistics.median(c['wall'] for c in colds):.2f} s",
             f"floor {statistics.median(f['seconds'] for f in floors):.2f} s; ours / floor "
             f"wall {statistics.median(wall):.2f}x ({', '.join(f'{r:.2f}' for r in wall)}), "
             f"CPU {statistics.median(cpu):.2f}x ({', '.join(f'{r:.2f}' for r in cpu)})")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jpegs", type=int, default=12)
    parser.add_argument("--heics", type=int, default=6)
    parser.add_argument("--links", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", help="folder for the photos (kept between runs)")
    arguments = parser.parse_args(argv)
    work = Path(arguments.work or tempfile.mkdtemp(prefix="frame-ingest-phone-"))
    print(f"# machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at "
          f"start; photos in {work}")
    signatures.register_heif()
    started = time.perf_counter()
    jpegs, heics = make_set(work / "photos", arguments.jpegs, arguments.heics, arguments.seed)
    sizes = {kind: [p.stat().st_size / 1e6 for p in paths]
             for kind, paths in (("JPEG", jpegs), ("HEIC", heics))}
    print(f"# {len(jpegs)} JPEG ({min(sizes['JPEG']):.1f}-{max(sizes['JPEG']):.1f} MB) and "
          f"{len(heics)} HEIC ({min(sizes['HEIC'], default=0):.1f}-"
          f"{max(sizes['HEIC'], default=0):.1f} MB) of 4032x3024, ready in "
          f"{time.perf_counter() - started:.0f} s")
    rounds = arguments.repeat
    rows = []
    floor, ours = cpu_ms(decode_draft, jpegs, rounds), cpu_ms(sign, jpegs, rounds)
    rows.append(("JPEG decode floor (draft 1/8: 504x378)", f"{floor:.1f} ms CPU",
                 f"full decode {cpu_ms(decode_full, jpegs[:4], 1):.1f} ms CPU"))
    rows.append(("JPEG signing (catalog.sign_library_file)", f"{ours:.1f} ms CPU",
                 f"{ours / floor:.2f}x its floor"))
    if heics:
        heic_floor, heic_ours = cpu_ms(decode_full, heics, rounds), cpu_ms(sign, heics, rounds)
        rows += heic_options(heics, rounds)
        heic_draft = cpu_ms(decode_draft, heics, rounds)
        rows.append(("HEIC signing (catalog.sign_library_file)", f"{heic_ours:.1f} ms CPU",
                     f"{heic_ours / heic_draft:.2f}x the thumbnail decode; "
                     f"{heic_ours / heic_floor:.3f}x the full decode ({heic_floor:.1f} ms)"))
    rows += cold_resweeps(work, "JPEG", jpegs, arguments.links, rounds)
    if heics:
        rows += cold_resweeps(work, "HEIC", heics, arguments.links, rounds)
    width = max(len(row[0]) for row in rows)
    for name, value, detail in rows:
        print(f"{name:<{width}}  {value:>14}  {detail}")
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
