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
- ``SIMILAR`` (default). Candidates: every pair and dihedral turn (4 rotations, and the
  same of the mirror image) that the confirm step could accept, found by figures no turn
  changes (``index.search_keys``) and tested on the 4x4 coarse grids, so the candidate step
  never loses a pair the confirm step would take (low-detail photos, small copies).
  Confirm, in that turn: on the thumbnails, compared at the resolution the smaller copy
  really has (``compare_sides``), a root-mean-square pixel difference within the limit for
  that side (``thumb_limit``: ``thumb_rms`` at 32), and on low-contrast pictures within a
  share of their contrast (``pair_limits``), and a mean brightness within
  ``luma_delta``; the band means within ``mean_delta`` and the aspect ratio were already
  tested. The confirm step is what keeps burst shots and brightness-edited copies apart.

``rms`` and ``similar`` match exact copies first (``exact_first``): a pair of the same
bytes is an ``exact`` match whatever the method. Pairs a person restored from quarantine
are never matched again: the gate drops them (``excluded``) before confirming, the resweep
when it forms groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.config import DedupeConfig
from pipeline.index import SignatureIndex, search_keys
from pipeline.signatures import THUMB, TURNS, Signature, coarse, grids_from_bytes, turn

ASPECT_TOLERANCE = 0.03
CONFIRM_BATCH = 2048        # candidate pairs confirmed at once (about 10 MB of work arrays)
SEARCH_BATCH = 50_000       # candidate pairs tested per turn at once (about 13 MB)


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
        self.grids = grids_from_bytes([signature.grid])

    def thumbs(self, positions) -> np.ndarray:
        return np.repeat(self.signature.thumb_array()[None], len(positions), axis=0)


class WholeLibrary:
    """The queries of the resweep: every row of the index, against the index itself (so a
    pair is two different rows)."""
    whole_library = True

    def __init__(self, index: SignatureIndex, store):
        self.index, self.store = index, store
        self.sha256 = index.sha256
        self.means = index.means
        self.sizes = index.sizes
        self.grids = index.grids

    def thumbs(self, positions) -> np.ndarray:
        return self.index.thumbs(self.store, positions)


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
        """Every pair the confirm step could accept, in every turn it could accept it in,
        and no pair it could not: the confirm's own limits applied to the coarse grids
        (block means of the thumbnails: a difference of block means is never larger than
        the pixel difference it averages). First a superset from the index (figures no
        turn changes, ``search_keys``), then the exact test per pair and turn
        (``plausible_turns``)."""
        reach = search_reach(settings)
        if queries.whole_library:
            first, second = index.key_pairs(reach)
        else:
            key = search_keys(queries.means, queries.grids)[0]
            second = index.key_neighbours(key, reach)
            first = np.zeros(len(second), dtype=np.int64)
        pairs = Pairs.of(first, second)
        return _concatenate([plausible_turns(queries, index,
                                             pairs.take(slice(start, start + SEARCH_BATCH)),
                                             settings)
                             for start in range(0, max(len(pairs), 1), SEARCH_BATCH)])

    def confirm(self, queries, index, store, pairs, settings) -> np.ndarray:
        distance = np.full(len(pairs), np.inf)
        if len(pairs) == 0:
            return distance
        first = queries.thumbs(pairs.first)
        second = index.thumbs(store, pairs.second)
        sides = compare_sides(queries.sizes[pairs.first], index.sizes[pairs.second])
        for number in range(TURNS):
            for side in COMPARE_SIDES:
                chosen = np.flatnonzero((pairs.turn == number) & (sides == side))
                if len(chosen) == 0:
                    continue
                turned = coarse(turn(first[chosen], number), side)
                other = coarse(second[chosen], side)
                difference = turned - other
                rms = np.sqrt(np.mean(difference * difference, axis=(1, 2))) / 255.0
                brightness = np.abs(turned.mean(axis=(1, 2)) - other.mean(axis=(1, 2))) / 255.0
                lower = np.minimum(contrast(turned), contrast(other))
                confirmed = ((rms <= pair_limits(side, settings, lower)) &
                             (brightness <= settings.luma_delta))
                distance[chosen] = np.where(confirmed, rms, np.inf)
        return distance


# The thumbnails are compared at the resolution the SMALLER copy really has: a copy with
# fewer than COMPARE_SIDES[side] pixels on its short side is compared on block means of
# the thumbnails (16 x 16 or 8 x 8), where its own resampling (Lanczos, bilinear: wider
# than an area average) no longer shows, with the limit measured at that side
# (docs/dedupe.md, bench/small_copies.py).
COMPARE_SIDES = (32, 16, 8)
SHORT_SIDE_FOR = {32: 160, 16: 80}      # the least short side (pixels) compared at 32, 16
SMALL_LIMITS = {16: 0.0035, 8: 0.0035}  # thumbnail RMS limits at 16 and 8 (32: thumb_rms)


# On a low-contrast picture (a thin pole across a clear sky, a calm sea) a burst shot zoomed
# by 3-6 % moves only the little the picture holds, and its thumbnail can come closer than
# ``thumb_rms`` while real copies of it (re-compressed, resized, converted) come much closer
# still: their error shrinks with the picture's contrast. So at 32 and 16 the limit is also
# at most a share of the pair's contrast (the lower RMS contrast of the two thumbnails at
# the compare side, 0..1), never below a floor that keeps copies of flat pictures (fog, a
# white wall: contrast near 0) matched (docs/dedupe.md, bench/contrast.py). At 8 the
# copies' resampling already spans what a zoom changes: no contrast rule there.
CONTRAST_RULES = {32: (0.12, 0.003), 16: (0.08, 0.0025)}   # side: (share, floor)


def contrast(thumbs: np.ndarray) -> np.ndarray:
    """RMS contrast (0..1) of each thumbnail of a stack, at whatever side it has."""
    return np.asarray(thumbs).std(axis=(-2, -1)) / 255.0


def pair_limits(side: int, settings: DedupeConfig, lower: np.ndarray) -> np.ndarray:
    """The thumbnail RMS limit of each pair compared at ``side``, given the lower
    ``contrast`` of its two thumbnails there (see CONTRAST_RULES); never above
    ``thumb_limit``, which the candidate step uses."""
    limit = thumb_limit(side, settings)
    if side not in CONTRAST_RULES:
        return np.full(len(lower), limit)
    share, floor = CONTRAST_RULES[side]
    return np.minimum(limit, np.maximum(floor, share * np.asarray(lower, np.float64)))


def compare_sides(first_sizes, second_sizes) -> np.ndarray:
    """The side (32, 16 or 8) each pair's thumbnails are compared at: set by the smaller
    copy's short side."""
    short = np.minimum(np.asarray(first_sizes).reshape(-1, 2).min(axis=1),
                       np.asarray(second_sizes).reshape(-1, 2).min(axis=1))
    return np.where(short >= SHORT_SIDE_FOR[32], 32,
                    np.where(short >= SHORT_SIDE_FOR[16], 16, 8))


def thumb_limit(side: int, settings: DedupeConfig) -> float:
    return settings.thumb_rms if side == THUMB else min(settings.thumb_rms, SMALL_LIMITS[side])


def search_reach(settings: DedupeConfig) -> np.ndarray:
    """How far apart (0..255) each place of ``search_keys`` may be in a pair the confirm
    step can accept (a hair wider: float32 rounding)."""
    widest = max(thumb_limit(side, settings) for side in COMPARE_SIDES)
    return np.array([settings.mean_delta] * 3 + [settings.luma_delta] + [2 * widest] * 4
                    ) * 255.0 + 1e-3


def plausible_turns(queries, index: SignatureIndex, pairs: Pairs, settings) -> Pairs:
    """Each candidate pair once per dihedral turn (0..7) of the query in which the cheap
    part of the confirm holds: the same aspect ratio (sides swapped by an odd turn), every
    band mean within ``mean_delta``, the same brightness (``luma_delta``) and the coarse
    grids within the thumbnail limit of the pair's compare side. Every one of these is
    implied by the confirm step, so no pair it would accept is dropped here."""
    if len(pairs) == 0:
        return Pairs.of([], [], [])
    first_sizes, second_sizes = queries.sizes[pairs.first], index.sizes[pairs.second]
    cheap = np.all(_mean_gap(queries.means[pairs.first], index.means[pairs.second]) / 255.0
                   <= settings.mean_delta, axis=1)
    first_grids, second_grids = queries.grids[pairs.first], index.grids[pairs.second]
    cheap &= (np.abs(first_grids.mean(axis=(1, 2)) - second_grids.mean(axis=(1, 2))) / 255.0
              <= settings.luma_delta + 1e-6)
    limits = np.array([thumb_limit(int(side), settings) for side in
                       compare_sides(first_sizes, second_sizes)]) * 255.0 + 1e-3
    chosen, turns = [], []
    for number in range(TURNS):
        difference = turn(first_grids, number) - second_grids
        rms = np.sqrt(np.mean(difference * difference, axis=(1, 2)))
        hits = np.flatnonzero(cheap & (rms <= limits) &
                              _same_aspect(first_sizes, second_sizes, number))
        chosen.append(hits)
        turns.append(np.full(len(hits), number))
    chosen, turns = np.concatenate(chosen), np.concatenate(turns)
    return Pairs(pairs.first[chosen], pairs.second[chosen], turns.astype(np.int64))


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


def library_pairs(index: SignatureIndex, store,
                  settings: DedupeConfig) -> list[tuple[int, int, str, float]]:
    """The resweep's question: every matching pair of library files, as (a, b, method,
    distance) with a < b, the closest rotation of each pair; a pair the exact step matched
    is not matched again."""
    library = WholeLibrary(index, store)
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


def _concatenate(parts: list[Pairs]) -> Pairs:
    return Pairs(*(np.concatenate([getattr(part, name) for part in parts])
                   for name in ("first", "second", "turn")))


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
