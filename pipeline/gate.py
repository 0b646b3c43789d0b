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

Pairs a person restored from quarantine (``overrides``) are never matched again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import DedupeConfig
from pipeline.index import SignatureIndex
from pipeline.items import Decision, Verdict
from pipeline.signatures import THUMB, Signature, phash, rotations, thumb_distance

ASPECT_TOLERANCE = 0.03


@dataclass(frozen=True)
class Match:
    position: int           # in the index
    method: str
    distance: float


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
        return _rms_match(signature, index, settings, excluded)
    if settings.method == "similar":
        return _similar_match(signature, index, thumbs_of, settings, excluded)
    return None


def _rms_match(signature, index, settings, excluded) -> Match | None:
    positions = [position for position in index.mean_matches(signature.mean,
                                                             settings.rms_threshold)
                 if index.sha256[position] not in excluded]
    if not positions:
        return None
    query = np.asarray(signature.mean, dtype=np.float32)
    distances = [float(np.max(np.abs(index.means[position] - query))) for position in positions]
    best = int(np.argmin(distances))
    return Match(int(positions[best]), "rms", round(distances[best], 4))


def _similar_match(signature, index, thumbs_of, settings, excluded) -> Match | None:
    turned = rotations(signature.thumb_array())
    hashes = [phash(thumb) for _, thumb in turned]
    candidates = [(position, rotation) for position, rotation, _ in
                  index.hash_candidates(hashes, settings.hash_distance)
                  if index.sha256[position] not in excluded
                  and _same_aspect(signature, index.sizes[position], rotation)
                  and _means_close(signature, index.means[position], settings.mean_delta)]
    if not candidates:
        return None
    stored = thumbs_of(sorted({position for position, _ in candidates}))
    best: Match | None = None
    brightness = float(turned[0][1].mean())
    for position, rotation in candidates:
        library_thumb = np.frombuffer(stored[position], dtype=np.uint8).reshape(THUMB, THUMB)
        if abs(brightness - float(library_thumb.mean())) / 255.0 > settings.luma_delta:
            continue
        distance = thumb_distance(turned[rotation][1], library_thumb)
        if distance <= settings.thumb_rms and (best is None or distance < best.distance):
            best = Match(position, "similar", round(distance, 4))
    return best


def _same_aspect(signature: Signature, library_size, rotation: int) -> bool:
    width, height = int(library_size[0]), int(library_size[1])
    if rotation % 2:  # a quarter turn swaps the sides
        width, height = height, width
    if min(width, height, signature.width, signature.height) <= 0:
        return False
    ratio = (signature.width / signature.height) / (width / height)
    return abs(ratio - 1.0) <= ASPECT_TOLERANCE


def _means_close(signature: Signature, library_mean, limit: float) -> bool:
    difference = np.abs(np.asarray(signature.mean, dtype=np.float32) - library_mean) / 255.0
    return bool(np.all(difference <= limit))


def decide(signature: Signature, index: SignatureIndex, thumbs_of, settings: DedupeConfig,
           excluded: set[str] = frozenset()) -> tuple[Decision, int | None]:
    """The verdict on a newcomer, and the index position of the library file it matched."""
    match = find_match(signature, index, thumbs_of, settings, excluded)
    if match is None:
        return Decision(Verdict.PROMOTE), None
    library_width, library_height = index.sizes[match.position]
    library_pixels = int(library_width) * int(library_height)
    evidence = dict(matched_path=index.paths[match.position], method=match.method,
                    distance=match.distance)
    if settings.keep == "best" and signature.pixels > settings.best_pixel_ratio * library_pixels:
        reason = (f"{signature.width}x{signature.height} replaces the smaller "
                  f"{library_width}x{library_height} copy")
        return Decision(Verdict.REPLACE, reason=reason, **evidence), match.position
    reason = f"duplicate of {index.paths[match.position]} ({match.method}, {match.distance})"
    return Decision(Verdict.DUPLICATE, reason=reason, **evidence), match.position
