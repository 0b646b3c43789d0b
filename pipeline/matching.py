"""Whether two photos are the same picture: one object per ``[dedupe] method``.

Each method has two steps, used the same way by the gate (ONE newcomer against the
library, ``best_match``) and by the nightly resweep (EVERY library file against the
others, ``library_pairs``):

- ``candidates(queries, index, settings) -> Pairs``: a cheap search through the index
  (``pipeline/index.py``) for the pairs worth a closer look;
- ``confirm(queries, index, store, pairs, settings) -> distances``: the test that decides,
  one distance per pair, ``inf`` where the pair does not match.

The methods (``METHODS`` maps the config's name to its object):

- ``EXACT``: the same bytes (SHA-256). Candidates: equal digests; confirm: nothing left to
  check (distance 0).
- ``RMS``: the article's test. Candidates: every band mean closer than ``rms_threshold``
  (0..255; a sweep over the sorted red means for the whole library); confirm: the largest
  band-mean difference, a match when below ``rms_threshold``.
- ``SIMILAR`` (default). Candidates: a perceptual-hash neighbour (Hamming distance <=
  ``hash_distance``) of the query's thumbnail in any of four rotations. Confirm, in the
  rotation that brought the pair up: the same aspect ratio (sides swapped for a quarter
  turn), every band mean within ``mean_delta``, then on the thumbnails a root-mean-square
  pixel difference <= ``thumb_rms`` and a mean brightness within ``luma_delta`` (all 0..1).
  The hash only finds candidates cheaply; the confirm step is what keeps burst shots and
  brightness-edited copies apart.

``rms`` and ``similar`` match exact copies first (``exact_first``): a pair of the same
bytes is an ``exact`` match whatever the method. Pairs a person restored from quarantine
are never matched again: the gate drops them (``excluded``) before confirming, the resweep
when it forms groups.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.config import DedupeConfig
from pipeline.index import SignatureIndex
from pipeline.signatures import Signature, phash, rotations

ASPECT_TOLERANCE = 0.03
CONFIRM_BATCH = 2048        # candidate pairs confirmed at once (about 10 MB of work arrays)


@dataclass(frozen=True)
class Match:
    position: int           # in the index
    method: str
    distance: float


@dataclass
class Pairs:
    """Candidate pairs: query ``first[i]`` against index position ``second[i]``, the query's
    thumbnail turned by ``turn[i]`` quarter turns counter-clockwise (the turn whose hash
    brought the pair up; 0 for the methods that do not turn)."""
    first: np.ndarray
    second: np.ndarray
    turn: np.ndarray

    @classmethod
    def of(cls, first, second, turn=None) -> "Pairs":
        first = np.asarray(first, dtype=np.int64)
        second = np.asarray(second, dtype=np.int64)
        turn = np.zeros(len(first), np.int64) if turn is None else np.asarray(turn, np.int64)
        return cls(first, second, turn)

    def __len__(self) -> int:
        return len(self.first)

    def take(self, chosen) -> "Pairs":
        return Pairs(self.first[chosen], self.second[chosen], self.turn[chosen])


class Newcomer:
    """The queries of the gate: one signed file that is not in the index."""
    whole_library = False

    def __init__(self, signature: Signature):
        self.signature = signature
        self.sha256 = [signature.sha256]
        self.means = np.asarray([signature.mean], dtype=np.float32)
        self.sizes = np.asarray([[signature.width, signature.height]], dtype=np.int64)

    def thumbs(self, positions) -> np.ndarray:
        return np.repeat(self.signature.thumb_array()[None], len(positions), axis=0)

    def turned_hashes(self) -> np.ndarray:
        """(1, 4): the hash of the thumbnail turned 0, 90, 180 and 270 degrees."""
        return np.asarray([[phash(thumb) for _, thumb in
                            rotations(self.signature.thumb_array())]], dtype=np.uint64)


class WholeLibrary:
    """The queries of the resweep: every row of the index, against the index itself (so a
    pair is two different rows, and both orders may come up)."""
    whole_library = True

    def __init__(self, index: SignatureIndex, store):
        self.index, self.store = index, store
        self.sha256 = index.sha256
        self.means = index.means
        self.sizes = index.sizes

    def thumbs(self, positions) -> np.ndarray:
        return self.index.thumbs(self.store, positions)

    def turned_hashes(self) -> np.ndarray:
        return self.index.turned_hashes(self.store)


class Method(Protocol):
    """What every method has; see the module docstring."""
    name: str
    exact_first: bool       # match exact copies first (as an ``exact`` match)

    def candidates(self, queries, index: SignatureIndex, settings: DedupeConfig) -> Pairs: ...

    def confirm(self, queries, index: SignatureIndex, store, pairs: Pairs,
                settings: DedupeConfig) -> np.ndarray: ...


class Exact:
    name = "exact"
    exact_first = False

    def candidates(self, queries, index, settings) -> Pairs:
        if queries.whole_library:
            return Pairs.of(*index.exact_pairs())
        found = index.exact(queries.sha256[0])
        return Pairs.of(np.zeros(len(found)), found)

    def confirm(self, queries, index, store, pairs, settings) -> np.ndarray:
        return np.zeros(len(pairs))  # the same bytes: nothing left to check


class Rms:
    name = "rms"
    exact_first = True

    def candidates(self, queries, index, settings) -> Pairs:
        if queries.whole_library:
            return Pairs.of(*index.red_mean_pairs(settings.rms_threshold))
        found = index.mean_matches(queries.means[0], settings.rms_threshold)
        return Pairs.of(np.zeros(len(found)), found)

    def confirm(self, queries, index, store, pairs, settings) -> np.ndarray:
        distance = _mean_gap(queries.means[pairs.first], index.means[pairs.second]).max(axis=1)
        return np.where(distance < settings.rms_threshold, distance, np.inf)


class Similar:
    name = "similar"
    exact_first = True

    def candidates(self, queries, index, settings) -> Pairs:
        turned = queries.turned_hashes()
        if queries.whole_library:
            return Pairs.of(*index.hash_pairs(turned, settings.hash_distance))
        found = index.hash_candidates(turned[0].tolist(), settings.hash_distance)
        return Pairs.of(np.zeros(len(found)), [position for position, _, _ in found],
                        [rotation for _, rotation, _ in found])

    def confirm(self, queries, index, store, pairs, settings) -> np.ndarray:
        distance = np.full(len(pairs), np.inf)
        # the cheap half first (aspect, band means): most candidates end here, before any
        # thumbnail is read from the store
        plausible = np.flatnonzero(
            _same_aspect(queries.sizes[pairs.first], index.sizes[pairs.second], pairs.turn) &
            np.all(_mean_gap(queries.means[pairs.first], index.means[pairs.second]) / 255.0
                   <= settings.mean_delta, axis=1))
        if len(plausible) == 0:
            return distance
        pairs = pairs.take(plausible)
        first = queries.thumbs(pairs.first)
        second = index.thumbs(store, pairs.second)
        for quarter in range(4):
            chosen = np.flatnonzero(pairs.turn == quarter)
            if len(chosen) == 0:
                continue
            turned = np.rot90(first[chosen], quarter, axes=(1, 2)).astype(np.float32)
            other = second[chosen].astype(np.float32)
            difference = turned - other
            rms = np.sqrt(np.mean(difference * difference, axis=(1, 2))) / 255.0
            brightness = np.abs(turned.mean(axis=(1, 2)) - other.mean(axis=(1, 2))) / 255.0
            confirmed = (rms <= settings.thumb_rms) & (brightness <= settings.luma_delta)
            distance[plausible[chosen]] = np.where(confirmed, rms, np.inf)
        return distance


EXACT, RMS, SIMILAR = Exact(), Rms(), Similar()
METHODS = {method.name: method for method in (EXACT, RMS, SIMILAR)}


def methods_for(settings: DedupeConfig) -> tuple[Method, ...]:
    """The configured method, after ``exact`` when it matches exact copies first."""
    method = METHODS[settings.method]
    return (EXACT, method) if method.exact_first else (method,)


def best_match(signature: Signature, index: SignatureIndex, store, settings: DedupeConfig,
               excluded: set[str] = frozenset()) -> Match | None:
    """The gate's question: the closest library match of one newcomer, or None.

    ``excluded`` holds SHA-256 values that must not match (pairs a person restored). The
    first method that matches anything decides (exact copies before similar ones).
    """
    newcomer = Newcomer(signature)
    for method in methods_for(settings):
        pairs = method.candidates(newcomer, index, settings)
        pairs = pairs.take(np.asarray([index.sha256[position] not in excluded
                                       for position in pairs.second.tolist()], dtype=bool))
        if len(pairs) == 0:
            continue
        distances = confirmed(method, newcomer, index, store, pairs, settings)
        best = int(np.argmin(distances))
        if np.isfinite(distances[best]):
            return Match(int(pairs.second[best]), method.name, round(float(distances[best]), 4))
    return None


def library_pairs(index: SignatureIndex, store, settings: DedupeConfig,
                  hash_bound: int) -> list[tuple[int, int, str, float]]:
    """The resweep's question: every matching pair of library files, as (a, b, method,
    distance) with a < b, the closest rotation of each pair; a pair the exact step matched
    is not matched again. ``hash_bound`` narrows ``hash_distance`` for the whole-library
    search (``[resweep] hash_distance``)."""
    library = WholeLibrary(index, store)
    settings = dataclasses.replace(settings,
                                   hash_distance=min(settings.hash_distance, hash_bound))
    edges: list[tuple[int, int, str, float]] = []
    matched: set[tuple[int, int]] = set()
    for method in methods_for(settings):
        pairs = method.candidates(library, index, settings)
        distances = confirmed(method, library, index, store, pairs, settings)
        best: dict[tuple[int, int], float] = {}
        for number in np.flatnonzero(np.isfinite(distances)).tolist():
            pair = tuple(sorted((int(pairs.first[number]), int(pairs.second[number]))))
            if pair not in matched:
                best[pair] = min(best.get(pair, np.inf), float(distances[number]))
        edges += [(a, b, method.name, round(distance, 4)) for (a, b), distance in best.items()]
        matched.update(best)
    return edges


def confirmed(method: Method, queries, index: SignatureIndex, store, pairs: Pairs,
              settings: DedupeConfig) -> np.ndarray:
    """``method.confirm`` over ``pairs`` in batches (bounded work arrays)."""
    if len(pairs) <= CONFIRM_BATCH:
        return method.confirm(queries, index, store, pairs, settings)
    return np.concatenate([
        method.confirm(queries, index, store, pairs.take(slice(start, start + CONFIRM_BATCH)),
                       settings)
        for start in range(0, len(pairs), CONFIRM_BATCH)])


def _mean_gap(first_means, second_means) -> np.ndarray:
    return np.abs(np.asarray(first_means, np.float32) - np.asarray(second_means, np.float32))


def _same_aspect(first_sizes, second_sizes, rotation) -> np.ndarray:
    first_sizes = np.asarray(first_sizes, np.float64).reshape(-1, 2)
    second_sizes = np.asarray(second_sizes, np.float64).reshape(-1, 2)
    turned = (np.asarray(rotation) % 2) == 1  # a quarter turn swaps the sides
    width = np.where(turned, second_sizes[:, 1], second_sizes[:, 0])
    height = np.where(turned, second_sizes[:, 0], second_sizes[:, 1])
    valid = (np.minimum(width, height) > 0) & (first_sizes.min(axis=1) > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (first_sizes[:, 0] / first_sizes[:, 1]) / (width / height)
    return valid & (np.abs(ratio - 1.0) <= ASPECT_TOLERANCE)
