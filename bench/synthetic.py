"""Synthetic signature rows and file trees, for measuring how the product scales with the
size of the library without decoding 100,000 photographs first.

What is synthetic and what is real (bench/run.py prints this too):

* ``fill_store``: real SQLite stores written by the product's own ``Store.put_file``; the
  rows hold random 32x32 thumbnails (their hashes made by the product's ``phash_many``),
  random band means and 1920x1200 sizes. A real library's hashes are less uniform, so
  real lookups find somewhat more candidates to confirm.
* ``link_tree``: N real directory entries under year/month-like folders, each a hard link
  to a corpus photo (no extra disk space), with a synthetic row per file whose size and
  mtime are the file's own, as a cold resweep would have left them. A warm resweep
  (nothing changed) of that tree is then the product's real warm path: one walk, one
  query, the duplicate search over every stored signature.
"""

from __future__ import annotations

import os
from pathlib import Path

import pipeline  # noqa: F401  (sets the BLAS thread count before numpy is imported)
import numpy as np

from pipeline.signatures import Signature, phash_many
from pipeline.store import Store

ROWS_PER_TRANSACTION = 5000


def random_signatures(count: int, seed: int, start: int = 0):
    """``count`` synthetic signatures, generated a block at a time (bounded memory)."""
    rng = np.random.default_rng(seed)
    for block_start in range(0, count, ROWS_PER_TRANSACTION):
        block = min(ROWS_PER_TRANSACTION, count - block_start)
        thumbs = rng.integers(0, 256, (block, 32, 32), dtype=np.uint8)
        hashes = phash_many(thumbs)
        means = rng.uniform(20, 235, (block, 3)).round(4)
        for number in range(block):
            serial = start + block_start + number
            mean = tuple(float(value) for value in means[number])
            yield serial, Signature(f"{serial:064x}", 300_000 + serial, "JPEG", 1920, 1200,
                                    mean, mean, int(hashes[number]), thumbs[number].tobytes())


def fill_store(database: Path, count: int, seed: int = 1,
               extra: list[tuple[str, Signature]] = ()) -> None:
    """A store of ``count`` synthetic rows (paths synthetic/NNNNNN.jpg) plus ``extra``."""
    with Store(database) as store:
        pending = list(extra)
        for serial, signature in random_signatures(count, seed):
            pending.append((f"synthetic/{serial:06d}.jpg", signature))
            if len(pending) >= ROWS_PER_TRANSACTION:
                _put(store, pending)
        _put(store, pending)


def _put(store: Store, pending: list) -> None:
    with store.transaction() as tx:
        for path, signature in pending:
            store.put_file(tx, path, signature.size, 0, signature)
    pending.clear()


def link_tree(pictures: Path, database: Path, count: int, photos: list[Path],
              seed: int = 2) -> None:
    """``count`` hard links to ``photos`` under pictures/YYYY/MM/, each with a synthetic
    store row matching its size and mtime (so a resweep finds nothing changed)."""
    pictures.mkdir(parents=True, exist_ok=True)
    with Store(database) as store:
        pending = []
        for serial, signature in random_signatures(count, seed):
            folder = f"{2000 + serial // 1200:04d}/{serial // 100 % 12 + 1:02d}"
            relative = f"{folder}/IMG_{serial:06d}.jpg"
            target = pictures / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(photos[serial % len(photos)], target)
            status = target.stat()
            pending.append((relative, status.st_size, status.st_mtime_ns, signature))
            if len(pending) >= ROWS_PER_TRANSACTION:
                _put_stat(store, pending)
        _put_stat(store, pending)


def _put_stat(store: Store, pending: list) -> None:
    with store.transaction() as tx:
        for relative, size, mtime_ns, signature in pending:
            store.put_file(tx, relative, size, mtime_ns, signature)
    pending.clear()
