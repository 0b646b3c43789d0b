"""An in-memory, vectorised view of the signature store for fast lookups.

The store keeps thumbnails on disk; the index keeps only what a first pass over *every*
library file needs, as numpy arrays: the 64-bit perceptual hashes, the per-band means and
the pixel sizes (about 40 bytes a file: 4 MB for 100,000 files). One lookup is a handful
of whole-array operations (XOR + popcount of the hashes for each of four rotations, or a
broadcast comparison of the means), never a Python loop over rows; only the few candidates
that survive are confirmed against their thumbnails, fetched from SQLite by id.
"""

from __future__ import annotations

import numpy as np

from pipeline.signatures import Signature

_GROW = 1024


class SignatureIndex:
    """Append-only arrays (with a live mask) of the decodable library files."""

    def __init__(self) -> None:
        self.count = 0
        self.ids = np.zeros(_GROW, dtype=np.int64)
        self.hashes = np.zeros(_GROW, dtype=np.uint64)
        self.means = np.zeros((_GROW, 3), dtype=np.float32)
        self.sizes = np.zeros((_GROW, 2), dtype=np.int64)   # width, height
        self.live = np.zeros(_GROW, dtype=bool)
        self.paths: list[str] = []
        self.sha256: list[str] = []
        self.position_of: dict[str, int] = {}
        self.by_sha256: dict[str, set[int]] = {}

    @classmethod
    def from_store(cls, store) -> "SignatureIndex":
        """Load every decodable library row in one query, straight into the arrays."""
        rows = store.query("SELECT id, path, sha256, phash, mean_r, mean_g, mean_b, width, "
                           "height FROM files WHERE error IS NULL ORDER BY id")
        index = cls()
        index._reserve(len(rows))
        count = len(rows)
        if count:
            columns = list(zip(*rows))
            index.ids[:count] = columns[0]
            index.hashes[:count] = np.array(columns[3], dtype=np.int64).view(np.uint64)
            index.means[:count] = np.column_stack(columns[4:7])
            index.sizes[:count] = np.column_stack(columns[7:9])
            index.live[:count] = True
            index.paths = list(columns[1])
            index.sha256 = list(columns[2])
            index.position_of = {path: position for position, path in enumerate(index.paths)}
            for position, sha256 in enumerate(index.sha256):
                index.by_sha256.setdefault(sha256, set()).add(position)
            index.count = count
        return index

    def _reserve(self, extra: int) -> None:
        needed = self.count + extra
        if needed <= len(self.ids):
            return
        capacity = max(needed, 2 * len(self.ids))
        for name in ("ids", "hashes", "means", "sizes", "live"):
            array = getattr(self, name)
            grown = np.zeros((capacity,) + array.shape[1:], dtype=array.dtype)
            grown[:self.count] = array[:self.count]
            setattr(self, name, grown)

    def _append(self, file_id: int, path: str, sha256: str, phash: int, mean, size) -> None:
        position = self.count
        self.ids[position] = file_id
        self.hashes[position] = phash
        self.means[position] = mean
        self.sizes[position] = size
        self.live[position] = True
        self.paths.append(path)
        self.sha256.append(sha256)
        self.position_of[path] = position
        self.by_sha256.setdefault(sha256, set()).add(position)
        self.count += 1

    def add(self, file_id: int, path: str, signature: Signature) -> None:
        self.remove(path)
        self._reserve(1)
        self._append(file_id, path, signature.sha256, signature.phash, signature.mean,
                     (signature.width, signature.height))

    def remove(self, path: str) -> None:
        position = self.position_of.pop(path, None)
        if position is not None:
            self.live[position] = False
            self.by_sha256.get(self.sha256[position], set()).discard(position)

    def __len__(self) -> int:
        return len(self.position_of)

    def exact(self, sha256: str) -> list[int]:
        """Live positions holding exactly these bytes."""
        return sorted(position for position in self.by_sha256.get(sha256, ())
                      if self.live[position])

    def mean_matches(self, mean, threshold: float) -> np.ndarray:
        """Positions whose every band mean is within ``threshold`` (0..255 scale)."""
        difference = np.abs(self.means[:self.count] - np.asarray(mean, dtype=np.float32))
        hits = np.all(difference < threshold, axis=1) & self.live[:self.count]
        return np.flatnonzero(hits)

    def hash_candidates(self, hashes: list[int], max_distance: int) -> list[tuple[int, int, int]]:
        """(position, rotation index, Hamming distance) of every live hash within
        ``max_distance`` of any of ``hashes`` (the query's four rotations)."""
        stored = self.hashes[:self.count]
        live = self.live[:self.count]
        found = []
        for rotation, query in enumerate(hashes):
            distances = np.bitwise_count(stored ^ np.uint64(query))
            for position in np.flatnonzero((distances <= max_distance) & live):
                found.append((int(position), rotation, int(distances[position])))
        return found
