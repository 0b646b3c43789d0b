"""The library's signatures as numpy arrays, and the searches over them.

The store keeps thumbnails on disk; the index keeps only what a first pass over *every*
library file needs: the 64-bit perceptual hashes, the per-band means, the pixel sizes, and
the file sizes and times the resweep orders its keepers by (about 60 bytes a file: 6 MB for
100,000 files). It is loaded once (``from_store``) and used the same way by the gate (one
newcomer against the library) and the resweep (the library against itself).

Each search comes in two shapes, with the same answer for the same pair:

- *one query* against every row (the gate): a handful of whole-array operations (a
  dictionary lookup of the SHA-256, a broadcast comparison of the means, XOR + popcount of
  the hashes), never a Python loop over rows;
- *every row against every other* (the resweep), without n^2 / 2 comparisons (5 * 10^9 for
  100,000 files): runs of equal digests; a window sweep over the sorted red means; and
  multi-index hashing of the 64-bit hash. The hash is cut into four 16-bit chunks; if two
  hashes differ in at most d bits, some chunk differs in at most d // 4 bits (pigeonhole),
  so looking up each chunk's value and its neighbours within d // 4 bits in a sorted table
  finds every pair within d.

Only the few candidates that survive are confirmed (``pipeline/matching.py``) against
their thumbnails, fetched from SQLite by id (``thumbs``).
"""

from __future__ import annotations

import numpy as np

from pipeline.signatures import THUMB, Signature, phash_many

_GROW = 1024
CHUNK_BITS = 16
THUMB_BATCH = 500           # thumbnails hashed at once (the DCT works in float64: 4 MB)


class SignatureIndex:
    """Append-only arrays (with a live mask) of the decodable library files; position =
    row number, the same in every array and list."""

    def __init__(self) -> None:
        self.count = 0
        self.ids = np.zeros(_GROW, dtype=np.int64)
        self.hashes = np.zeros(_GROW, dtype=np.uint64)
        self.means = np.zeros((_GROW, 3), dtype=np.float32)
        self.sizes = np.zeros((_GROW, 2), dtype=np.int64)   # width, height
        self.file_bytes = np.zeros(_GROW, dtype=np.int64)
        self.mtime_ns = np.zeros(_GROW, dtype=np.int64)
        self.live = np.zeros(_GROW, dtype=bool)
        self.paths: list[str] = []
        self.sha256: list[str] = []
        # built on first use: the resweep never needs them, and at 100,000 files they
        # are a third of its memory (a dict entry and a set per file)
        self._position_of: dict[str, int] | None = None
        self._by_sha256: dict[str, set[int]] | None = None

    @classmethod
    def from_store(cls, store) -> "SignatureIndex":
        """Load every decodable library row in one query, straight into the arrays."""
        rows = store.query("SELECT id, path, sha256, phash, mean_r, mean_g, mean_b, width, "
                           "height, size, mtime_ns FROM files WHERE error IS NULL ORDER BY id")
        index = cls()
        index._reserve(len(rows))
        count = len(rows)
        if count:
            columns = list(zip(*rows))
            index.ids[:count] = columns[0]
            index.hashes[:count] = np.array(columns[3], dtype=np.int64).view(np.uint64)
            index.means[:count] = np.column_stack(columns[4:7])
            index.sizes[:count] = np.column_stack(columns[7:9])
            index.file_bytes[:count] = columns[9]
            index.mtime_ns[:count] = columns[10]
            index.live[:count] = True
            index.paths = list(columns[1])
            index.sha256 = list(columns[2])
            index.count = count
        return index

    @property
    def position_of(self) -> dict[str, int]:
        """path -> live position."""
        if self._position_of is None:
            self._position_of = {path: position for position, path in enumerate(self.paths)
                                 if self.live[position]}
        return self._position_of

    @property
    def by_sha256(self) -> dict[str, set[int]]:
        """SHA-256 -> live positions holding those bytes."""
        if self._by_sha256 is None:
            self._by_sha256 = {}
            for position in np.flatnonzero(self.live[:self.count]).tolist():
                self._by_sha256.setdefault(self.sha256[position], set()).add(position)
        return self._by_sha256

    _ARRAYS = ("ids", "hashes", "means", "sizes", "file_bytes", "mtime_ns", "live")

    def _reserve(self, extra: int) -> None:
        needed = self.count + extra
        if needed <= len(self.ids):
            return
        capacity = max(needed, 2 * len(self.ids))
        for name in self._ARRAYS:
            array = getattr(self, name)
            grown = np.zeros((capacity,) + array.shape[1:], dtype=array.dtype)
            grown[:self.count] = array[:self.count]
            setattr(self, name, grown)

    def add(self, file_id: int, path: str, signature: Signature, mtime_ns: int = 0) -> None:
        """A file filed into Pictures (``mtime_ns``: its time, when the caller knows it)."""
        self.remove(path)
        self._reserve(1)
        position = self.count
        self.ids[position] = file_id
        self.hashes[position] = signature.phash
        self.means[position] = signature.mean
        self.sizes[position] = (signature.width, signature.height)
        self.file_bytes[position] = signature.size
        self.mtime_ns[position] = mtime_ns
        self.live[position] = True
        self.paths.append(path)
        self.sha256.append(signature.sha256)
        self.count += 1
        if self._position_of is not None:
            self._position_of[path] = position
        if self._by_sha256 is not None:
            self._by_sha256.setdefault(signature.sha256, set()).add(position)

    def remove(self, path: str) -> None:
        position = self.position_of.pop(path, None)
        if position is not None:
            self.live[position] = False
            self.by_sha256.get(self.sha256[position], set()).discard(position)

    def __len__(self) -> int:
        return int(np.count_nonzero(self.live[:self.count]))

    # --- thumbnails (kept in the store, fetched by id) ------------------------------

    def thumbs(self, store, positions) -> np.ndarray:
        """(len(positions), THUMB, THUMB) uint8: the stored thumbnails, in that order."""
        ids = [int(file_id) for file_id in self.ids[np.asarray(positions, dtype=np.int64)]]
        by_id = store.thumbs(sorted(set(ids)))
        data = b"".join(by_id[file_id] for file_id in ids)
        return np.frombuffer(data, dtype=np.uint8).reshape(len(ids), THUMB, THUMB)

    def turned_hashes(self, store) -> np.ndarray:
        """(count, 4) hashes of each thumbnail turned 0/90/180/270 degrees counter-clockwise
        (the stored hash, then three more from the stored thumbnail), in batches."""
        turned = np.zeros((self.count, 4), dtype=np.uint64)
        turned[:, 0] = self.hashes[:self.count]
        for start in range(0, self.count, THUMB_BATCH):
            positions = np.arange(start, min(start + THUMB_BATCH, self.count))
            thumbs = self.thumbs(store, positions)
            for quarter in (1, 2, 3):
                turned[positions, quarter] = phash_many(np.rot90(thumbs, quarter, axes=(1, 2)))
        return turned

    # --- one query against every row (the gate) --------------------------------------

    def exact(self, sha256: str) -> list[int]:
        """Live positions holding exactly these bytes."""
        return sorted(position for position in self.by_sha256.get(sha256, ())
                      if self.live[position])

    def mean_matches(self, mean, threshold: float) -> np.ndarray:
        """Positions whose every band mean is within ``threshold`` (0..255 scale)."""
        difference = np.abs(self.means[:self.count] - np.asarray(mean, dtype=np.float32))
        hits = np.all(difference < threshold, axis=1) & self.live[:self.count]
        return np.flatnonzero(hits)

    def hash_candidates(self, hashes, max_distance: int) -> list[tuple[int, int, int]]:
        """(position, rotation index, Hamming distance) of every live hash within
        ``max_distance`` of any of ``hashes`` (the query's four rotations), by rotation,
        then position."""
        stored = self.hashes[:self.count]
        live = self.live[:self.count]
        found = []
        for rotation, query in enumerate(hashes):
            distances = np.bitwise_count(stored ^ np.uint64(query))
            for position in np.flatnonzero((distances <= max_distance) & live):
                found.append((int(position), rotation, int(distances[position])))
        return found

    # --- every row against every other (the resweep) ---------------------------------

    def exact_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(first, second), first < second: every pair of live rows with the same bytes
        (rows sorted by digest, runs of equal digests)."""
        live = np.flatnonzero(self.live[:self.count]).tolist()
        order = sorted(live, key=self.sha256.__getitem__) + [None]
        first, second, run = [], [], []
        for position in order:
            if run and (position is None or self.sha256[position] != self.sha256[run[0]]):
                for number, one in enumerate(run):
                    first += [one] * (len(run) - number - 1)
                    second += run[number + 1:]
                run = []
            if position is not None:
                run.append(position)
        return np.array(first, dtype=np.int64), np.array(second, dtype=np.int64)

    def red_mean_pairs(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """(first, second): every pair of live rows whose red means are closer than
        ``threshold``, each pair once: sort once, sweep a window (``searchsorted``)."""
        red = self.means[:self.count, 0]
        order = np.argsort(red, kind="stable")
        red = red[order]
        ends = np.searchsorted(red, red + threshold, side="left")
        counts = np.maximum(ends - np.arange(len(red)) - 1, 0)
        first = np.repeat(np.arange(len(red)), counts)
        second = first + 1 + _offsets(counts)
        first, second = order[first], order[second]
        keep = self.live[first] & self.live[second]
        return first[keep], second[keep]

    def hash_pairs(self, turned: np.ndarray, bound: int):
        """(first, second, turn): every pair of different live rows with
        Hamming(turned[first, turn], hash[second]) <= bound, by multi-index hashing."""
        stored = self.hashes[:self.count]
        radius = bound // (64 // CHUNK_BITS)
        masks = np.array([mask for mask in range(1 << CHUNK_BITS)
                          if mask.bit_count() <= radius], dtype=np.int64)
        found = []
        for chunk in range(64 // CHUNK_BITS):
            shift, low = np.uint64(chunk * CHUNK_BITS), np.uint64((1 << CHUNK_BITS) - 1)
            keys = ((stored >> shift) & low).astype(np.int64)
            order = np.argsort(keys, kind="stable")
            # where each 16-bit value's run starts in the sorted order: a lookup is then two
            # array reads instead of two binary searches (searchsorted was 80% of a warm
            # resweep of 100,000 files, docs/performance.md)
            bucket_starts = np.zeros((1 << CHUNK_BITS) + 1, dtype=np.int64)
            np.cumsum(np.bincount(keys, minlength=1 << CHUNK_BITS), out=bucket_starts[1:])
            for quarter in range(4):
                query = ((turned[:, quarter] >> shift) & low).astype(np.int64)
                for mask in masks:
                    found.append(_lookup(bucket_starts, order, query ^ mask, turned[:, quarter],
                                         stored, bound, quarter))
        first, second, turn = _unique_triples(found, self.count)
        keep = self.live[first] & self.live[second]
        return first[keep], second[keep], turn[keep]


def _offsets(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each count, concatenated (the vectorised inner loop index)."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def _lookup(bucket_starts, order, query, full_query, stored, bound, quarter):
    start = bucket_starts[query]
    counts = bucket_starts[query + 1] - start
    first = np.repeat(np.arange(len(query)), counts)
    second = order[np.repeat(start, counts) + _offsets(counts)]
    close = np.bitwise_count(full_query[first] ^ stored[second]) <= bound
    keep = close & (first != second)
    return first[keep], second[keep], np.full(int(keep.sum()), quarter)


def _unique_triples(found, count: int):
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    first = np.concatenate([item[0] for item in found]).astype(np.int64)
    second = np.concatenate([item[1] for item in found]).astype(np.int64)
    turn = np.concatenate([item[2] for item in found]).astype(np.int64)
    keys = np.unique((first * count + second) * 4 + turn)
    return keys // 4 // count, keys // 4 % count, keys % 4
