"""decide(signature, index) -> Decision: is a newcomer a duplicate, and which copy stays?

Pure decision, no file moves. Whether the newcomer matches a library file is the
configured method's question (``pipeline/matching.py``: exact, rms or similar, the same
objects the nightly resweep uses); this module adds the keep policy (``[dedupe] keep``):

- ``best`` (default): a newcomer with more than ``best_pixel_ratio`` times the pixels of
  the library copy it matches replaces it (the full-size original arriving after a
  mail-sized copy); otherwise it is the duplicate;
- ``first``: the library's copy always stays.

Pairs a person restored from quarantine (``excluded``) are never matched again.
"""

from __future__ import annotations

from pipeline.config import DedupeConfig
from pipeline.index import SignatureIndex
from pipeline.items import Decision, Verdict
from pipeline.matching import best_match
from pipeline.signatures import Signature


def decide(signature: Signature, index: SignatureIndex, store, settings: DedupeConfig,
           excluded: set[str] = frozenset()) -> Decision:
    """The verdict on a newcomer against the library in ``index`` (thumbnails from ``store``)."""
    match = best_match(signature, index, store, settings, excluded)
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
