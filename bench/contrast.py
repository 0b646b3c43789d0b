#!/usr/bin/env python3
"""Near pairs of a bench/corpus.py folder with their contrast: is the thumbnail limit
better set relative to a picture's own contrast? (docs/dedupe.md, issue 12)

Signs every file (and, with ``--small-copies``, the mirrors and small copies that
bench/small_copies.py adds), then runs the ``similar`` candidate search and confirm step
with the thumbnail limits loosened to ``--loose`` and without the contrast rule
(``matching.CONTRAST_RULES``) so that every near pair shows, and
prints, per compare side, the distances of the true pairs (copies) and of the false ones
(burst neighbours, distinct photos) against the contrast of the pair (the lower RMS
contrast of the two thumbnails at the compare side, 0..1). ``--dump FILE`` writes every
pair as JSON lines.

    python bench/corpus.py /tmp/c150 --originals 150 --seed 1 --all-kinds
    python bench/contrast.py /tmp/c150 --small-copies
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.corpus import ALL_NEG_KINDS as NEG_KINDS  # noqa: E402
from bench.small_copies import load_corpus, made_copies  # noqa: E402
from pipeline import matching  # noqa: E402
from pipeline.config import parse_config  # noqa: E402
from pipeline.index import SignatureIndex  # noqa: E402
from pipeline.signatures import coarse, sign_bytes, turn  # noqa: E402
from pipeline.store import Store  # noqa: E402

def _extra(job):
    return made_copies(*job)


def _sign(job):
    name, content = job
    return name, len(content), sign_bytes(content, 10**9)


def near_pairs(corpus: Path, small_copies: bool, loose: float):
    labels, data, group, kind = load_corpus(corpus)
    with Pool(os.cpu_count()) as pool:
        if small_copies:
            jobs = [(name, data[name], f["kind"] == "original") for name, f in labels.items()
                    if f["kind"] == "original" or f["kind"] in NEG_KINDS]
            for (name, _, _), made in zip(jobs, pool.map(_extra, jobs, chunksize=8)):
                for new, label, content in made:
                    data[new], group[new], kind[new] = content, name, label
        signed = pool.map(_sign, list(data.items()), chunksize=16)
    settings = parse_config({"dedupe": {"thumb_rms": loose}}).dedupe
    matching.SMALL_LIMITS = {side: loose for side in matching.SMALL_LIMITS}
    matching.CONTRAST_RULES = {}    # the rule this measures must not hide the pairs
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        with Store(Path(folder) / "store.sqlite3") as store:
            with store.transaction() as tx:
                for name, size, signature in signed:
                    store.put_file(tx, name, size, 0, signature)
            index = SignatureIndex.from_store(store)
            library = matching.WholeLibrary(index, store)
            pairs = matching.SIMILAR.candidates(library, index, settings)
            distance = matching.confirmed(matching.SIMILAR, library, index, store, pairs,
                                          settings)
            keep = np.flatnonzero(np.isfinite(distance))
            pairs, distance = pairs.take(keep), distance[keep]
            first = library.thumbs(pairs.first)
            second = index.thumbs(store, pairs.second)
            sides = matching.compare_sides(index.sizes[pairs.first], index.sizes[pairs.second])
            best = {}
            for number in range(len(pairs)):
                a, b = int(pairs.first[number]), int(pairs.second[number])
                side = int(sides[number])
                one = coarse(turn(first[number], int(pairs.turn[number])), side)
                two = coarse(second[number], side)
                low = float(min(matching.contrast(one), matching.contrast(two)))
                key = tuple(sorted((a, b)))
                row = (float(distance[number]), side, low)
                if key not in best or row[0] < best[key][0]:
                    best[key] = row
            for (a, b), (dist, side, low) in best.items():
                x, y = index.paths[a], index.paths[b]
                rows.append({"a": x, "b": y, "kind_a": kind[x], "kind_b": kind[y],
                             "true": group[x] == group[y],
                             "distance": round(dist, 5), "side": side,
                             "contrast": round(low, 5)})
    return rows


def report(rows, limits):
    for side in (32, 16, 8):
        mine = [r for r in rows if r["side"] == side]
        if not mine:
            continue
        true = [r for r in mine if r["true"]]
        false = [r for r in mine if not r["true"]]
        print(f"side {side}: {len(true)} true pairs, {len(false)} false pairs within the "
              f"loose limit")
        if true:
            ratio = np.array([r["distance"] / max(r["contrast"], 1e-6) for r in true])
            print(f"  true: distance max {max(r['distance'] for r in true):.4f}, "
                  f"distance/contrast max {ratio.max():.4f} "
                  f"(99th percentile {np.percentile(ratio, 99):.4f})")
            for r in sorted(true, key=lambda r: -r["distance"] / max(r["contrast"], 1e-6))[:5]:
                print(f"    {r['a']} ~ {r['b']}: {r['distance']:.4f} at contrast "
                      f"{r['contrast']:.4f} ({r['kind_a']}/{r['kind_b']})")
        limit = limits[side]
        close = sorted((r for r in false if r["distance"] <= 2 * limit),
                       key=lambda r: r["distance"])
        for r in close[:8]:
            print(f"  false: {r['a']} ~ {r['b']}: {r['distance']:.4f} at contrast "
                  f"{r['contrast']:.4f}, ratio {r['distance'] / max(r['contrast'], 1e-6):.4f}"
                  f" ({r['kind_a']}/{r['kind_b']})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--small-copies", action="store_true")
    parser.add_argument("--loose", type=float, default=0.02)
    parser.add_argument("--dump", type=Path)
    args = parser.parse_args(argv)
    limits = {32: parse_config({}).dedupe.thumb_rms, **matching.SMALL_LIMITS}
    rows = near_pairs(args.corpus, args.small_copies, args.loose)
    if args.dump:
        args.dump.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report(rows, limits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
