"""Gate lookup latency against stores of growing size (for bench/run.py).

The incoming photos are real corpus files, signed once beforehand (the decode is the same
whatever the store holds, so it is left out); the store is a real SQLite file with
synthetic rows (bench/synthetic.py) plus the real signature of one original, so one query
is a duplicate that goes through the hash lookup AND the thumbnail confirmation, the other
a new photo. A lookup is what ``Gate.judge`` does after signing: the restored-pairs query,
then ``gate.decide`` with thumbnails fetched from the store.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path

import pipeline  # noqa: F401  (one BLAS thread per process)
from pipeline.config import parse_config
from pipeline.gate import decide
from pipeline.index import SignatureIndex
from pipeline.items import Verdict
from pipeline.signatures import sign_file
from pipeline.store import Store

from bench.synthetic import fill_store

LOOKUPS = 200


def pick_queries(corpus: Path) -> tuple[Path, Path, Path]:
    """(an original, its recompressed copy, another original) from the labels."""
    files = json.loads((corpus / "labels.json").read_text())["files"]
    copy = next(f for f in files if f["kind"] in ("recompressed", "downscaled_50", "heic"))
    other = next(f for f in files if f["kind"] == "original" and f["name"] != copy["of"])
    return corpus / copy["of"], corpus / copy["name"], corpus / other["name"]


def time_lookups(store, index, signature, settings) -> tuple[float, Verdict]:
    times, verdict = [], None
    for _ in range(LOOKUPS):
        started = time.perf_counter()
        excluded = store.overridden_partners(signature.sha256)
        decision = decide(signature, index, store, settings, excluded)
        times.append(time.perf_counter() - started)
        verdict = decision.verdict
    return statistics.median(times), verdict


def gate_latency(work: Path, corpus: Path, size: int) -> tuple[str, str, str]:
    original, copy, other = pick_queries(corpus)
    database = work / f"gate-{size}" / "store.sqlite3"
    shutil.rmtree(database.parent, ignore_errors=True)
    started = time.perf_counter()
    config = parse_config({})
    limit = config.gate.max_pixels
    fill_store(database, size, extra=[("library/original.jpg", sign_file(original, limit))])
    built = time.perf_counter() - started
    settings = config.dedupe
    with Store(database) as store:
        loads = []
        for _ in range(3):
            started = time.perf_counter()
            index = SignatureIndex.from_store(store)
            loads.append(time.perf_counter() - started)
        duplicate, duplicate_verdict = time_lookups(store, index, sign_file(copy, limit), settings)
        new, new_verdict = time_lookups(store, index, sign_file(other, limit), settings)
    if duplicate_verdict is not Verdict.DUPLICATE or new_verdict is not Verdict.PROMOTE:
        raise SystemExit(f"gate bench: unexpected verdicts {duplicate_verdict}, {new_verdict}")
    return (f"gate lookup, {size:,} signatures (synthetic)",
            f"{1000 * max(duplicate, new):.2f} ms",
            f"median of {LOOKUPS}: duplicate {1000 * duplicate:.2f} ms, new photo "
            f"{1000 * new:.2f} ms; index load {statistics.median(loads):.2f} s; "
            f"store built in {built:.0f} s")
