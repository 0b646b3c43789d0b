"""decide(signature, library) -> Decision: is a newcomer a duplicate, and which copy stays?

Pure decision, no file moves. The three methods, each a superset of the one before:

- ``exact``: the same bytes (SHA-256).
- ``rms``: the article's test: every per-band mean within ``rms_threshold`` (0..255 scale).
- ``similar`` (default): exact, or a perceptual-hash neighbour in any of four rotations
  (Hamming distance <= ``hash_distance``) with the same aspect ratio, *confirmed* on the
  thumbnails: root-mean-square pixel difference <= ``thumb_rms``, mean brightness of the
  thumbnails within ``luma_delta``, and every band mean within ``mean_delta`` (all on a 0..1
  scale). The hash only finds candidates cheaply; the
  confirm step is what keeps burst shots and brightness-edited copies apart.

``pair_distances`` is the ONE place that says whether two signatures match (after the
cheap candidate step): the gate calls it for one newcomer against its few candidates, the
nightly resweep (``pipeline/duplicates.py``) for thousands of candidate pairs at once.

Pairs a person restored from quarantine (``overrides``) are never matched again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import DedupeConfig
from pipeline.index import SignatureIndex
from pipeline.items import Decision, Verdict
from pipeline.signatures import THUMB, Signature, phash, rotations

ASPECT_TOLERANCE = 0.03


@dataclass(frozen=True)
class Match:
    position: int           # in the index
    method: str
    distance: float


@dataclass
class PairSide:
    """One side of N candidate pairs, as arrays: means (N, 3) 0..255, sizes (N, 2) as
    (width, height), thumbs (N, THUMB, THUMB) uint8 (None for the ``rms`` method)."""
    means: np.ndarray
    sizes: np.ndarray
    thumbs: np.ndarray | None = None


def pair_distances(method: str, settings: DedupeConfig, first: PairSide, second: PairSide,
                   rotation: np.ndarray) -> np.ndarray:
    """Distance of each candidate pair, ``inf`` where the pair does not match.

    ``rotation[i]`` (0..3 quarter turns counter-clockwise) is the turn of ``first`` whose
    hash brought the pair up; ``similar`` compares ``first``'s thumbnail turned that way.
    ``rms``: the largest band-mean difference (0..255), a match when < ``rms_threshold``.
    ``similar``: same aspect, band means within ``mean_delta``, thumbnail brightness within
    ``luma_delta`` and thumbnail RMS difference <= ``thumb_rms`` (0..1). Exact byte copies
    are matched before this.
    """
    if method == "rms":
        distance = _mean_gap(first, second).max(axis=1)
        return np.where(distance < settings.rms_threshold, distance, np.inf)
    if method != "similar":
        return np.full(len(rotation), np.inf)
    plausible = plausible_pairs(settings, first, second, rotation)
    distance = np.full(len(rotation), np.inf)
    for quarter in range(4):
        chosen = np.flatnonzero(plausible & (rotation == quarter))
        if len(chosen) == 0:
            continue
        turned = np.rot90(first.thumbs[chosen], quarter, axes=(1, 2)).astype(np.float32)
        other = second.thumbs[chosen].astype(np.float32)
        difference = turned - other
        rms = np.sqrt(np.mean(difference * difference, axis=(1, 2))) / 255.0
        brightness = np.abs(turned.mean(axis=(1, 2)) - other.mean(axis=(1, 2))) / 255.0
        confirmed = (rms <= settings.thumb_rms) & (brightness <= settings.luma_delta)
        distance[chosen] = np.where(confirmed, rms, np.inf)
    return distance


def plausible_pairs(settings: DedupeConfig, first: PairSide, second: PairSide,
                    rotation: np.ndarray) -> np.ndarray:
    """The cheap half of the ``similar`` test (aspect, band means): needs no thumbnails, so
    the resweep can drop most candidates before it reads any thumbnail from the store."""
    return _same_aspect(first.sizes, second.sizes, rotation) & \
        np.all(_mean_gap(first, second) / 255.0 <= settings.mean_delta, axis=1)


def _mean_gap(first: PairSide, second: PairSide) -> np.ndarray:
    return np.abs(np.asarray(first.means, np.float32) - np.asarray(second.means, np.float32))


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


def find_match(signature: Signature, index: SignatureIndex, thumbs_of, settings: DedupeConfig,
               excluded: set[str] = frozenset()) -> Match | None:
    """The best library match for ``signature`` by the configured method, or None.

    ``thumbs_of(positions) -> {position: bytes}`` fetches stored thumbnails (from the store),
    ``excluded`` holds sha256 values that must not match (restored pairs).
    """
    for position in index.exact(signature.sha256):
        if index.sha256[position] not in excluded:
            return Match(position, "exact", 0.0)
    if settings.method == "rms":
        positions = [int(position) for position in
                     index.mean_matches(signature.mean, settings.rms_threshold)]
        return _best(signature, index, positions, [0] * len(positions), None, settings,
                     excluded)
    if settings.method == "similar":
        hashes = [phash(thumb) for _, thumb in rotations(signature.thumb_array())]
        found = index.hash_candidates(hashes, settings.hash_distance)
        return _best(signature, index, [position for position, _, _ in found],
                     [rotation for _, rotation, _ in found], thumbs_of, settings, excluded)
    return None


def _best(signature, index, positions, turns, thumbs_of, settings, excluded) -> Match | None:
    """Confirm the candidates with ``pair_distances``; the closest match wins."""
    keep = [number for number, position in enumerate(positions)
            if index.sha256[position] not in excluded]
    if not keep:
        return None
    positions = np.asarray([positions[number] for number in keep], dtype=np.int64)
    turns = np.asarray([turns[number] for number in keep], dtype=np.int64)
    count = len(positions)
    first = PairSide(np.repeat([signature.mean], count, axis=0),
                     np.repeat([[signature.width, signature.height]], count, axis=0))
    second = PairSide(index.means[positions], index.sizes[positions])
    if thumbs_of is not None:
        stored = thumbs_of(sorted(set(positions.tolist())))
        first.thumbs = np.repeat(signature.thumb_array()[None], count, axis=0)
        second.thumbs = np.stack([np.frombuffer(stored[position], dtype=np.uint8)
                                  .reshape(THUMB, THUMB) for position in positions.tolist()])
    distances = pair_distances(settings.method, settings, first, second, turns)
    best = int(np.argmin(distances))
    if not np.isfinite(distances[best]):
        return None
    return Match(int(positions[best]), settings.method, round(float(distances[best]), 4))


def decide(signature: Signature, index: SignatureIndex, store, settings: DedupeConfig,
           excluded: set[str] = frozenset()) -> Decision:
    """The verdict on a newcomer against the library in ``index`` (thumbnails from ``store``)."""

    def thumbs_of(positions: list[int]) -> dict[int, bytes]:
        by_id = store.thumbs([int(index.ids[position]) for position in positions])
        return {position: by_id[int(index.ids[position])] for position in positions}

    match = find_match(signature, index, thumbs_of, settings, excluded)
    if match is None:
        return Decision(Verdict.PROMOTE)
    library_width, library_height = index.sizes[match.position]
    library_pixels = int(library_width) * int(library_height)
    evidence = dict(matched_path=index.paths[match.position],
                    matched_sha256=index.sha256[match.position], method=match.method,
                    distance=match.distance)
    if settings.keep == "best" and signature.pixels > settings.best_pixel_ratio * library_pixels:
        reason = (f"{signature.width}x{signature.height} replaces the smaller "
                  f"{library_width}x{library_height} copy")
        return Decision(Verdict.REPLACE, reason=reason, **evidence)
    reason = f"duplicate of {index.paths[match.position]} ({match.method}, {match.distance})"
    return Decision(Verdict.DUPLICATE, reason=reason, **evidence)
