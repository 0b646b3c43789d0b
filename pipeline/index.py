"""The library's signatures as numpy arrays, and the searches over them.

The store keeps thumbnails on disk; the index keeps only what a first pass over *every*
library file needs: the per-band means, the 4x4 coarse grid of each thumbnail and the
search keys made from them (``search_keys``), the pixel sizes, and the file sizes and
times the resweep orders its keepers by (about 180 bytes a file: 18 MB for 100,000 files).
It is loaded once (``from_store``) and used the same way by the gate (one newcomer against
the library) and the resweep (the library against itself).

Each search comes in two shapes, with the same answer for the same pair:

- *one query* against every row (the gate): a handful of whole-array operations (a
  dictionary lookup of the SHA-256, a broadcast comparison of the means or of the search
  keys), never a Python loop over rows;
- *every row against every other* (the resweep), without n^2 / 2 comparisons (5 * 10^9 for
  100,000 files): runs of equal digests; a window sweep over the sorted red means; and a
  multi-probe grid over the search keys (``key_pairs``): if two rows are within reach r in
  a place, and the place is cut into cells 2 r wide, the other row is in the query's cell
  or the neighbour on the near side, so 2^4 lookups in a sorted table over four places find
  every pair, which the remaining places then filter.

Only the few candidates that survive are confirmed (``pipeline/matching.py``) against
their thumbnails, fetched from SQLite by id (``thumbs``).
"""

from __future__ import annotations

import numpy as np

from pipeline.signatures import GRID, THUMB, Signature, grids_from_bytes

_GROW = 1024


class SignatureIndex:
    """Append-only arrays (with a live mask) of the decodable library files; position =
    row number, the same in every array and list."""

    def __init__(self) -> None:
        self.count = 0
        self.ids = np.zeros(_GROW, dtype=np.int64)
        self.hashes = np.zeros(_GROW, dtype=np.uint64)
        self.means = np.zeros((_GROW, 3), dtype=np.float32)
        self.grids = np.zeros((_GROW, GRID, GRID), dtype=np.float32)
        self.keys = np.zeros((_GROW, KEY_PLACES), dtype=np.float32)  # see ``search_keys``
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
                           "height, size, mtime_ns, grid FROM files WHERE error IS NULL "
                           "ORDER BY id")
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
            index.grids[:count] = grids_from_bytes(columns[11])
            index.keys[:count] = search_keys(index.means[:count], index.grids[:count])
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

    _ARRAYS = ("ids", "hashes", "means", "grids", "keys", "sizes", "file_bytes", "mtime_ns",
               "live")

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
        self.grids[position] = grids_from_bytes([signature.grid])[0]
        self.keys[position] = search_keys(self.means[position:position + 1],
                                          self.grids[position:position + 1])[0]
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

    def key_neighbours(self, key, reach) -> np.ndarray:
        """Live positions whose ``search_keys`` are within ``reach`` of ``key`` in every
        place (``reach``: one figure per place)."""
        gaps = np.abs(self.keys[:self.count] - np.asarray(key, dtype=np.float32))
        return np.flatnonzero(np.all(gaps <= np.asarray(reach, np.float32), axis=1) &
                              self.live[:self.count])

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

    def key_pairs(self, reach) -> tuple[np.ndarray, np.ndarray]:
        """(first, second), first < second: every pair of live rows ``key_neighbours``
        would give, without comparing every row with every other. Each row is filed under
        its first BUCKET_PLACES key places cut into cells twice the reach wide: a row
        within reach lies, in each place, in the same cell or the neighbour on the near
        side, so each row looks up at most 2^4 = 16 cells (multi-probe); the pairs found
        are then checked in every place. Cost: a sort, 16 binary searches per row and the
        pairs sharing a cell (bench/low_detail_candidates.py measures it at 100,000)."""
        live = np.flatnonzero(self.live[:self.count])
        values = self.keys[live].astype(np.float64)
        reach = np.asarray(reach, dtype=np.float64)
        near = np.maximum(reach[:BUCKET_PLACES], 0.5)   # cells of at least one level
        width = 2.0 * near
        radix = (256.0 // width).astype(np.int64) + 4
        weights = np.concatenate(([1], np.cumprod(radix[:-1]))).astype(np.int64)
        bucketed = values[:, :BUCKET_PLACES]
        codes = ((np.floor(bucketed / width).astype(np.int64) + 1) * weights).sum(axis=1)
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        lower = np.floor((bucketed - near) / width).astype(np.int64) + 1
        upper = np.floor((bucketed + near) / width).astype(np.int64) + 1
        firsts, seconds = [], []
        for probe in range(1 << BUCKET_PLACES):
            upward = np.array([(probe >> place) & 1 for place in range(BUCKET_PLACES)], bool)
            # a place where both sides fall in one cell is probed once, not twice
            queries = np.flatnonzero(np.all(~upward | (upper != lower), axis=1))
            cells = (np.where(upward, upper, lower)[queries] * weights).sum(axis=1)
            start = np.searchsorted(sorted_codes, cells, side="left")
            counts = np.searchsorted(sorted_codes, cells, side="right") - start
            for block in range(0, len(queries), PROBE_BLOCK):   # bounded work arrays
                part = slice(block, block + PROBE_BLOCK)
                first = np.repeat(queries[part], counts[part])
                second = order[np.repeat(start[part], counts[part]) + _offsets(counts[part])]
                keep = first < second
                first, second = first[keep], second[keep]
                close = np.all(np.abs(values[first] - values[second]) <= reach, axis=1)
                firsts.append(live[first[close]])
                seconds.append(live[second[close]])
        if not firsts:                  # no rows at all (a library of videos only)
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(firsts), np.concatenate(seconds)


KEY_PLACES = 8      # band means (3), brightness (1), sorted quadrant means (4)
BUCKET_PLACES = 4   # the places the whole-library search files rows under
PROBE_BLOCK = 20000  # query rows expanded at once


def search_keys(means: np.ndarray, grids: np.ndarray) -> np.ndarray:
    """(n, 8) figures that a dihedral turn leaves unchanged, each bounded by one limit of
    the confirm step (0..255): the three band means (``mean_delta``), the brightness of
    the thumbnail (the grid's mean: ``luma_delta``), and the four quadrant means of the
    coarse grid, sorted. A turn only permutes the quadrants; if two grids (one turned)
    differ by at most ``b`` root-mean-square, each quadrant differs by at most ``2 b`` (a
    quadrant is the mean of 4 of the 16 cells), and so does each place of the sorted
    quadrants (sorting never widens the largest gap)."""
    grids = np.asarray(grids, np.float32)
    half = GRID // 2
    quadrants = grids.reshape(-1, 2, half, 2, half).mean(axis=(2, 4)).reshape(-1, 4)
    return np.column_stack([np.asarray(means, np.float32).reshape(-1, 3),
                            grids.reshape(len(grids), -1).mean(axis=1),
                            np.sort(quadrants, axis=1)]).astype(np.float32)


def _offsets(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each count, concatenated (the vectorised inner loop index)."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
