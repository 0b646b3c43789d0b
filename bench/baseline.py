#!/usr/bin/env python3
"""The seed article's duplicate finder, re-implemented from its description, for
comparison only (dry run: nothing is moved).

The article ("How to automatically remove duplicate images from your Raspberry Pi
digital frame photo library") does, for one folder, non-recursively:

1. list the folder; keep names that end with '.jpg' (case-sensitive: .JPG, .jpeg,
   .png, .heic ... are never looked at);
2. fully decode every such image with Pillow and take ``ImageStat.Stat(img).mean``
   (the per-band mean; the article calls it "RMS");
3. go over the files again, decoding and measuring each one a second time, and compare
   it with every other file in pure Python: two files are duplicates when the means of
   the first three bands each differ by less than 0.01;
4. move each match into a quarantine folder.

``baseline_scan`` does 1-3 (both decode passes, as the article does, unless
``decode_twice=False``) and returns the (file, matched_file) pairs that step 4 would
quarantine, in the order the script would move them. A file already quarantined is
neither checked nor matched again.

Faithfulness notes (the published script, not this re-implementation):
* its inner loop starts at index 1, so the first listed .jpg is never a match target
  (``skip_first=True`` reproduces that);
* once it has moved a file it later tries to open that file again and stops with
  FileNotFoundError, i.e. a real run ends at the first revisit of a quarantined file;
  this dry run carries on as a fixed script would;
* a greyscale JPEG (a single band) makes it fail with IndexError; here such files are
  counted in ``errors`` and skipped.

Usage: python bench/baseline.py FOLDER [--labels FOLDER/labels.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageStat

THRESHOLD = 0.01


@dataclass
class BaselineResult:
    pairs: list[tuple[str, str]]  # (file kept, file it would quarantine)
    seconds: float                # wall time of the whole scan
    files: int                    # entries in the folder
    checked: int = 0              # '.jpg' files actually decoded and compared
    skipped: list[str] = field(default_factory=list)  # names the article never looks at
    errors: list[str] = field(default_factory=list)   # unreadable / fewer than 3 bands
    decode_seconds: float = 0.0
    compare_seconds: float = 0.0
    comparisons: int = 0
    cpu_seconds: float = 0.0      # process CPU time (robust on a busy machine)

    @property
    def quarantined(self) -> list[str]:
        return [b for _, b in self.pairs]


def _mean(path: str) -> list[float]:
    with Image.open(path) as img:          # full decode, as in the article
        return ImageStat.Stat(img).mean


def _average_diff(v1, v2) -> bool:
    d0, d1, d2 = v1[0] - v2[0], v1[1] - v2[1], v1[2] - v2[2]
    return (-THRESHOLD < d0 < THRESHOLD and -THRESHOLD < d1 < THRESHOLD
            and -THRESHOLD < d2 < THRESHOLD)


def baseline_scan(folder: str | os.PathLike, decode_twice: bool = True,
                  skip_first: bool = False) -> BaselineResult:
    """Run the article's method on ``folder`` (dry run) and time it."""
    t0 = time.perf_counter()
    c0 = time.process_time()
    folder = str(folder)
    names = sorted(os.listdir(folder))  # the article uses listdir order; sorted = reproducible
    jpgs = [n for n in names if n.endswith(".jpg")]
    skipped = [n for n in names if not n.endswith(".jpg")]
    errors: list[str] = []

    # pass 1: the list of means
    means: list[tuple[list[float], str]] = []
    for n in jpgs:
        try:
            m = _mean(os.path.join(folder, n))
        except OSError:
            errors.append(n)
            continue
        if len(m) < 3:
            errors.append(n)
            continue
        means.append((m, n))
    t1 = time.perf_counter()

    # pass 2: each file (measured again) against every other one, pure Python
    first = 1 if skip_first else 0
    quarantined: set[str] = set()
    pairs: list[tuple[str, str]] = []
    comparisons = 0
    decode2 = 0.0
    by_name = {n: m for m, n in means}
    for n in jpgs:
        if n in quarantined or n not in by_name:
            continue
        if decode_twice:
            td = time.perf_counter()
            mine = _mean(os.path.join(folder, n))
            decode2 += time.perf_counter() - td
        else:
            mine = by_name[n]
        for k in range(first, len(means)):
            other, other_name = means[k]
            comparisons += 1
            if other_name != n and other_name not in quarantined and _average_diff(mine, other):
                quarantined.add(other_name)
                pairs.append((n, other_name))
    t2 = time.perf_counter()
    return BaselineResult(pairs=pairs, seconds=t2 - t0, files=len(names), checked=len(means),
                          skipped=skipped, errors=errors, decode_seconds=(t1 - t0) + decode2,
                          compare_seconds=(t2 - t1) - decode2, comparisons=comparisons,
                          cpu_seconds=time.process_time() - c0)


def score(result: BaselineResult, labels_path: str | os.PathLike) -> dict:
    """Compare the pairs with a bench/corpus.py labels.json."""
    labels = json.loads(Path(labels_path).read_text())
    files = {f["name"]: f for f in labels["files"]}
    group = {}
    for name, f in files.items():
        if f["kind"] == "original":
            group[name] = name
        elif not f["kind"].startswith("burst_"):
            group[name] = f["of"]
    dups = [n for n, f in files.items() if n in group and f["kind"] != "original"]
    tp = [(a, b) for a, b in result.pairs if a in group and group.get(b) == group[a]]
    fp = [(a, b) for a, b in result.pairs if (a, b) not in set(tp)]
    found: set[str] = set()
    for a, b in tp:
        found.update((a, b))
    per_kind: dict[str, list[int]] = {}
    for n in dups:
        k = files[n]["kind"]
        per_kind.setdefault(k, [0, 0])
        per_kind[k][1] += 1
        # a duplicate counts as caught when it is paired with a member of its group
        if n in found:
            per_kind[k][0] += 1
    neg_fp = [(a, b) for a, b in fp
              if files.get(a, {}).get("of") == b or files.get(b, {}).get("of") == a]
    return {
        "pairs": len(result.pairs), "true_pairs": len(tp), "false_pairs": len(fp),
        "false_pairs_on_hard_negatives": len(neg_fp),
        "duplicates": len(dups), "duplicates_caught": sum(v[0] for v in per_kind.values()),
        "per_kind": {k: f"{v[0]}/{v[1]}" for k, v in sorted(per_kind.items())},
    }


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="the seed article's duplicate finder (dry run)")
    ap.add_argument("folder")
    ap.add_argument("--labels", help="labels.json to score against (default: FOLDER/labels.json if present)")
    ap.add_argument("--single-decode", action="store_true",
                    help="decode each file once (the article decodes each twice)")
    a = ap.parse_args(argv)
    r = baseline_scan(a.folder, decode_twice=not a.single_decode)
    print(f"baseline (article): {r.files} entries, {r.checked} .jpg checked, "
          f"{len(r.skipped)} never looked at (not '.jpg'), {len(r.errors)} errors")
    print(f"  {len(r.pairs)} files would be quarantined; {r.seconds:.2f} s "
          f"(decode {r.decode_seconds:.2f} s, {r.comparisons} comparisons "
          f"{r.compare_seconds:.2f} s); {1000 * r.seconds / max(1, r.checked):.1f} ms/file; "
          f"CPU {r.cpu_seconds:.2f} s")
    labels = a.labels or (os.path.join(a.folder, "labels.json")
                          if os.path.exists(os.path.join(a.folder, "labels.json")) else None)
    if labels:
        s = score(r, labels)
        print(f"  vs labels: {s['true_pairs']} true pairs, {s['false_pairs']} false "
              f"({s['false_pairs_on_hard_negatives']} on hard negatives); "
              f"duplicates caught {s['duplicates_caught']}/{s['duplicates']}")
        print("  per kind: " + ", ".join(f"{k} {v}" for k, v in s["per_kind"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
