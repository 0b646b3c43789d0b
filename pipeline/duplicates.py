"""Duplicate groups inside the library, without comparing every file with every other.

The resweep needs every matching pair among n library files; n^2 / 2 comparisons is
5 * 10^9 for 100,000 photos, so candidates come from an index instead, per method:

- exact bytes: files sorted by SHA-256, runs of equal digests;
- ``rms``: files sorted by their red mean; a window sweep (``searchsorted``) pairs each
  file with the ones whose red mean is within the threshold above it;
- ``similar``: multi-index hashing of the 64-bit perceptual hash. The hash is cut into four
  16-bit chunks; if two hashes differ in at most d bits, some chunk differs in at most
  d // 4 bits (pigeonhole), so looking up each chunk's value and its neighbours within
  d // 4 bits in a sorted table finds every pair within d. Each file's hash is looked up
  in all four rotations (turned thumbnails are hashed in batches), against the stored
  unrotated hashes, like the gate does for a newcomer.

Every candidate pair is then decided by ``gate.pair_distances``, the gate's own matcher,
vectorised over batches of pairs; thumbnails are read from the store a batch at a time.
Finally groups are formed *around the kept file*: files in keep order, each file not yet
taken keeps itself and takes the untaken files that match IT; there is no chaining.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.config import DedupeConfig
from pipeline.gate import PairSide, pair_distances, plausible_pairs
from pipeline.signatures import THUMB, phash_many, to_unsigned64

CHUNK_BITS = 16
CONFIRM_BATCH = 2048        # candidate pairs confirmed at once (about 10 MB of work arrays)
THUMB_BATCH = 500           # thumbnails hashed at once (the DCT works in float64: 4 MB)


@dataclass
class Library:
    """The decodable library files as arrays (position = row number)."""
    ids: np.ndarray
    paths: list[str]
    sha256: list[str]
    hashes: np.ndarray          # uint64, unrotated
    means: np.ndarray           # (n, 3) float32
    sizes: np.ndarray           # (n, 2) width, height
    file_bytes: np.ndarray
    mtime_ns: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class Group:
    keeper: int                 # position of the file that stays
    # (position, method, distance) of each file that matched the keeper directly
    members: list[tuple[int, str, float]] = field(default_factory=list)


def load_library(store) -> Library:
    rows = store.query("SELECT id, path, sha256, phash, mean_r, mean_g, mean_b, width, height, "
                       "size, mtime_ns FROM files WHERE error IS NULL ORDER BY id")
    return Library(
        ids=np.array([row["id"] for row in rows], dtype=np.int64),
        paths=[row["path"] for row in rows], sha256=[row["sha256"] for row in rows],
        hashes=np.array([to_unsigned64(row["phash"]) for row in rows], dtype=np.uint64),
        means=np.array([(row["mean_r"], row["mean_g"], row["mean_b"]) for row in rows],
                       dtype=np.float32).reshape(-1, 3),
        sizes=np.array([(row["width"], row["height"]) for row in rows],
                       dtype=np.int64).reshape(-1, 2),
        file_bytes=np.array([row["size"] for row in rows], dtype=np.int64),
        mtime_ns=np.array([row["mtime_ns"] for row in rows], dtype=np.int64))


def find_groups(store, library: Library, settings: DedupeConfig, hash_bound: int,
                overrides: set[tuple[str, str]] = frozenset()) -> list[Group]:
    """Every duplicate group in ``library``, each around its kept file, in keep order."""
    edges = exact_pairs(library)
    if settings.method == "rms":
        edges += confirmed_pairs(store, library, settings, *rms_candidates(library, settings))
    elif settings.method == "similar":
        bound = min(settings.hash_distance, hash_bound)
        first, second, turn = hash_candidates(library, rotated_hashes(store, library), bound)
        edges += confirmed_pairs(store, library, settings, first, second, turn)
    return group_around_keepers(library, edges, settings.keep, overrides)


def exact_pairs(library: Library) -> list[tuple[int, int, str, float]]:
    order = sorted(range(len(library)), key=library.sha256.__getitem__)
    pairs, run = [], []
    for position in order + [None]:
        if run and (position is None or library.sha256[position] != library.sha256[run[0]]):
            pairs += [(one, other, "exact", 0.0) for number, one in enumerate(run)
                      for other in run[number + 1:]]
            run = []
        if position is not None:
            run.append(position)
    return pairs


def rms_candidates(library: Library, settings: DedupeConfig):
    """Pairs whose red means are closer than the threshold: sort once, sweep a window."""
    order = np.argsort(library.means[:, 0], kind="stable")
    red = library.means[order, 0]
    ends = np.searchsorted(red, red + settings.rms_threshold, side="left")
    counts = np.maximum(ends - np.arange(len(red)) - 1, 0)
    first = np.repeat(np.arange(len(red)), counts)
    second = first + 1 + _offsets(counts)
    return order[first], order[second], np.zeros(len(first), dtype=np.int64)


def _offsets(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each count, concatenated (the vectorised inner loop index)."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def rotated_hashes(store, library: Library) -> np.ndarray:
    """(n, 4) hashes of each thumbnail turned 0/90/180/270 degrees, in batches."""
    turned = np.zeros((len(library), 4), dtype=np.uint64)
    turned[:, 0] = library.hashes
    for start in range(0, len(library), THUMB_BATCH):
        positions = np.arange(start, min(start + THUMB_BATCH, len(library)))
        thumbs = _thumbs(store, library, positions)
        for quarter in (1, 2, 3):
            turned[positions, quarter] = phash_many(np.rot90(thumbs, quarter, axes=(1, 2)))
    return turned


def _thumbs(store, library: Library, positions: np.ndarray) -> np.ndarray:
    by_id = store.thumbs([int(file_id) for file_id in library.ids[positions]])
    data = b"".join(by_id[int(file_id)] for file_id in library.ids[positions])
    return np.frombuffer(data, dtype=np.uint8).reshape(len(positions), THUMB, THUMB)


def hash_candidates(library: Library, turned: np.ndarray, bound: int):
    """(first, second, turn) with Hamming(turned[first, turn], hash[second]) <= bound."""
    radius = bound // (64 // CHUNK_BITS)
    masks = np.array([mask for mask in range(1 << CHUNK_BITS)
                      if mask.bit_count() <= radius], dtype=np.uint64)
    found = []
    for chunk in range(64 // CHUNK_BITS):
        shift, low = np.uint64(chunk * CHUNK_BITS), np.uint64((1 << CHUNK_BITS) - 1)
        keys = (library.hashes >> shift) & low
        order = np.argsort(keys, kind="stable")
        table = keys[order]
        for quarter in range(4):
            query = (turned[:, quarter] >> shift) & low
            for mask in masks:
                found.append(_lookup(table, order, query ^ mask, turned[:, quarter],
                                     library.hashes, bound, quarter))
    return _unique_triples(found, len(library.hashes))


def _lookup(table, order, query, full_query, stored, bound, quarter):
    start = np.searchsorted(table, query, side="left")
    counts = np.searchsorted(table, query, side="right") - start
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


def confirmed_pairs(store, library: Library, settings: DedupeConfig, first, second, turn):
    """Run the gate's matcher over the candidates in batches; one (a, b, method, distance)
    per matching unordered pair (the closest rotation), exact pairs left to exact_pairs."""
    best: dict[tuple[int, int], float] = {}
    for start in range(0, len(first), CONFIRM_BATCH):
        one, other = first[start:start + CONFIRM_BATCH], second[start:start + CONFIRM_BATCH]
        quarter = turn[start:start + CONFIRM_BATCH]
        left = PairSide(library.means[one], library.sizes[one])
        right = PairSide(library.means[other], library.sizes[other])
        if settings.method == "similar":
            keep = np.flatnonzero(plausible_pairs(settings, left, right, quarter))
            one, other, quarter = one[keep], other[keep], quarter[keep]
            left = PairSide(library.means[one], library.sizes[one], _thumbs(store, library, one))
            right = PairSide(library.means[other], library.sizes[other],
                             _thumbs(store, library, other))
        distances = pair_distances(settings.method, settings, left, right, quarter)
        for index in np.flatnonzero(np.isfinite(distances)):
            pair = tuple(sorted((int(one[index]), int(other[index]))))
            if library.sha256[pair[0]] != library.sha256[pair[1]]:
                best[pair] = min(best.get(pair, np.inf), float(distances[index]))
    return [(a, b, settings.method, round(distance, 4)) for (a, b), distance in best.items()]


def keep_order(library: Library, keep: str) -> np.ndarray:
    """Positions, the file to keep first: ``best`` = most pixels, largest file, oldest;
    ``first`` = oldest. The path breaks remaining ties so runs are repeatable."""
    path_rank = np.argsort(np.argsort(np.array(library.paths, dtype=object)))
    if keep == "first":
        return np.lexsort((path_rank, library.mtime_ns))
    pixels = library.sizes[:, 0] * library.sizes[:, 1]
    return np.lexsort((path_rank, library.mtime_ns, -library.file_bytes, -pixels))


def group_around_keepers(library: Library, edges, keep: str,
                         overrides: set[tuple[str, str]]) -> list[Group]:
    """No chaining: a file joins a group only by matching its kept file directly."""
    neighbours: dict[int, list[tuple[int, str, float]]] = {}
    for one, other, method, distance in edges:
        if tuple(sorted((library.sha256[one], library.sha256[other]))) in overrides:
            continue  # a person restored this pair: never duplicates again
        neighbours.setdefault(one, []).append((other, method, distance))
        neighbours.setdefault(other, []).append((one, method, distance))
    taken = np.zeros(len(library), dtype=bool)
    groups = []
    for position in keep_order(library, keep).tolist():
        if taken[position]:
            continue
        taken[position] = True
        group = Group(position)
        for other, method, distance in sorted(neighbours.get(position, ())):
            if not taken[other]:
                taken[other] = True
                group.members.append((other, method, distance))
        if group.members:
            groups.append(group)
    return groups
