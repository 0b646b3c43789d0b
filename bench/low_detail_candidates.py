#!/usr/bin/env python3
"""Cost of the `similar` candidate search (issue 12) at 25,000 / 50,000 / 100,000 files.

The candidate step no longer uses the perceptual hash (which is noise on low-detail
photos): it files every row by figures no dihedral turn changes (band means, brightness,
sorted quadrant means of the 4x4 grid; ``index.search_keys``) and looks up, per row, the
16 neighbouring cells of a 4-D grid (``SignatureIndex.key_pairs``), then keeps the pairs
and turns the confirm step could accept (``matching.plausible_turns``). This prints, for
each library size: the seconds of the whole-library search, the pairs it returns, the
pairs and turns left for the confirm step, and the gate's per-newcomer lookup.

Rows are realistic but synthetic (decoding 100,000 photos takes hours): each is a window
(random position, 30-100 % scale) of one of the real photographs bench/corpus.py uses,
with a random tone (per-band gain 0.85-1.15, gamma 0.8-1.25), reduced to the product's
32x32 thumbnail; LOW_DETAIL_SHARE of the rows are smooth skies, walls and fog (a
two-colour gradient in a random direction plus faint noise), the kind whose hash is noise.

    python bench/low_detail_candidates.py [--sizes 25000 50000 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pipeline  # noqa: E402,F401  (BLAS threads)
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.corpus import source_photos  # noqa: E402
from pipeline.config import parse_config  # noqa: E402
from pipeline.index import SignatureIndex, search_keys  # noqa: E402
from pipeline.matching import Newcomer, Pairs, plausible_turns, search_reach  # noqa: E402
from pipeline.matching import WholeLibrary  # noqa: E402
from pipeline.signatures import GRID, THUMB, Signature, coarse  # noqa: E402

LOW_DETAIL_SHARE = 0.2


def photo_rows(count: int, rng: np.random.Generator):
    """(thumbs uint8 (count, 32, 32), means (count, 3)) from windows of real photos."""
    sources = []
    for source in source_photos():
        image = source.load(reduce=4)
        image.thumbnail((480, 480))
        sources.append(image)
    thumbs = np.zeros((count, THUMB, THUMB), np.uint8)
    means = np.zeros((count, 3), np.float32)
    for number in range(count):
        image = sources[rng.integers(len(sources))]
        scale = rng.uniform(0.3, 1.0)
        crop_w, crop_h = image.width * scale, image.height * scale
        left = rng.uniform(0, image.width - crop_w)
        top = rng.uniform(0, image.height - crop_h)
        window = image.resize((2 * THUMB, 2 * THUMB), Image.BOX,
                              box=(left, top, left + crop_w, top + crop_h))
        toned = np.clip((np.asarray(window, np.float32) / 255.0) ** rng.uniform(0.8, 1.25)
                        * rng.uniform(0.85, 1.15, 3), 0, 1) * 255.0
        means[number] = toned.reshape(-1, 3).mean(axis=0)
        gray = toned @ np.array([0.299, 0.587, 0.114], np.float32)
        thumbs[number] = np.rint(gray.reshape(THUMB, 2, THUMB, 2).mean(axis=(1, 3)))
    return thumbs, means


def low_detail_rows(count: int, rng: np.random.Generator):
    """Smooth gradients (sky, wall, fog) with faint noise."""
    along = np.linspace(0.0, 1.0, THUMB)
    thumbs = np.zeros((count, THUMB, THUMB), np.uint8)
    means = np.zeros((count, 3), np.float32)
    for number in range(count):
        one, other = rng.uniform(20, 245, 3), rng.uniform(20, 245, 3)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.clip(np.cos(angle) * along[None, :] + np.sin(angle) * along[:, None], 0, 1)
        rgb = one * (1 - ramp[..., None]) + other * ramp[..., None]
        rgb += rng.normal(0, 0.7, rgb.shape)
        means[number] = rgb.reshape(-1, 3).mean(axis=0)
        gray = rgb @ np.array([0.299, 0.587, 0.114])
        thumbs[number] = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    return thumbs, means


def build_index(thumbs: np.ndarray, means: np.ndarray) -> SignatureIndex:
    """The index the product builds, filled array-wise (the search reads only these)."""
    index = SignatureIndex()
    count = len(thumbs)
    index._reserve(count)
    index.means[:count] = means
    index.grids[:count] = coarse(thumbs, GRID)
    index.keys[:count] = search_keys(means, index.grids[:count])
    index.sizes[:count] = (1920, 1200)
    index.live[:count] = True
    index.paths = [f"{number}.jpg" for number in range(count)]
    index.sha256 = [f"{number:064x}" for number in range(count)]
    index.count = count
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args(argv)
    settings = parse_config({}).dedupe
    rng = np.random.default_rng(arguments.seed)
    largest = max(arguments.sizes)
    low = int(largest * LOW_DETAIL_SHARE)
    started = time.perf_counter()
    photo_thumbs, photo_means = photo_rows(largest - low, rng)
    flat_thumbs, flat_means = low_detail_rows(low, rng)
    thumbs = np.concatenate([photo_thumbs, flat_thumbs])
    means = np.concatenate([photo_means, flat_means])
    shuffled = rng.permutation(largest)
    thumbs, means = thumbs[shuffled], means[shuffled]
    print(f"{largest} rows made in {time.perf_counter() - started:.0f} s "
          f"({LOW_DETAIL_SHARE:.0%} low-detail)")
    reach = search_reach(settings)
    for size in sorted(arguments.sizes):
        index = build_index(thumbs[:size], means[:size])
        started = time.perf_counter()
        first, second = index.key_pairs(reach)
        searched = time.perf_counter() - started
        library = WholeLibrary(index, store=None)
        turned = plausible_turns(library, index, Pairs.of(first, second), settings)
        filtered = time.perf_counter() - started
        newcomer_times = []
        for number in range(0, size, max(1, size // 200)):
            signature = Signature("0" * 64, 1, "JPEG", 1920, 1200,
                                  tuple(float(v) for v in means[number]), (0.0,) * 3, 0,
                                  thumbs[number].tobytes())
            query = Newcomer(signature)
            begun = time.perf_counter()
            found = index.key_neighbours(search_keys(query.means, query.grids)[0], reach)
            plausible_turns(query, index, Pairs.of(np.zeros(len(found)), found), settings)
            newcomer_times.append(time.perf_counter() - begun)
        print(f"{size:>7} files: whole-library search {searched:.2f} s, {len(first)} pairs "
              f"({len(first) / size:.2f} per file), {len(turned)} pair-turns left for the "
              f"confirm step, {filtered:.2f} s in all; gate lookup "
              f"{1000 * np.median(newcomer_times):.1f} ms median, "
              f"{1000 * max(newcomer_times):.1f} ms max "
              f"(all-pairs would be {size * (size - 1) // 2:.2e} comparisons)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
