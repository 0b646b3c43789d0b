"""Whether a video is a copy of one in Pictures, and which copy stays.

Videos are matched only against videos (``VideoIndex``: the store's ``videos`` rows in
memory; a family library holds hundreds of clips, not 100,000, so one query is a few
whole-array operations over all of them):

- **exact**: the same SHA-256 (works without a decoder too);
- **similar** (both decoded): the duration within ``DURATION_TOLERANCE`` (at least
  ``DURATION_SECONDS``), the same aspect (sides swapped for a quarter turn), and then the
  photos' confirm test on EVERY sampled frame, in the one rotation (0, 90, 180 or 270
  degrees) that fits all of them: the root-mean-square difference of the 32x32 thumbnails
  within ``FRAME_RMS`` and their mean brightness within ``FRAME_LUMA`` (0..1). Frames at
  10..90 % of the duration differ between two clips of one scene filmed seconds apart
  (measured: 0.11 for a pan 3 s later against 0.011 for a copy re-encoded at CRF 40;
  docs/video.md), so a different clip stays apart.

Keep the best copy (``decide_video``): clearly more pixels (``[dedupe] best_pixel_ratio``)
wins; at the same pixels a bit rate more than ``BIT_RATE_RATIO`` times higher wins;
anything else is a duplicate of the library's copy (no churn over small differences).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import DedupeConfig
from pipeline.items import Decision, Verdict
from pipeline.signatures import THUMB
from pipeline.video_signatures import FRACTIONS, VideoSignature

FRAME_RMS = 0.03
FRAME_LUMA = 0.015
DURATION_TOLERANCE = 0.03
DURATION_SECONDS = 0.3
ASPECT_TOLERANCE = 0.03
BIT_RATE_RATIO = 1.5
SAME_PIXELS = 1.05      # pixel counts this close are "the same pixels"


@dataclass(frozen=True)
class VideoMatch:
    path: str
    sha256: str
    method: str             # exact | similar
    distance: float
    width: int
    height: int
    bit_rate: int


class VideoIndex:
    """The videos of Pictures, as arrays; ``add``/``remove`` keep it current in a run."""

    def __init__(self, rows=()):
        self.paths: list[str] = []
        self.sha256: list[str] = []
        self.sizes = np.zeros((0, 2), np.int64)
        self.durations = np.zeros(0, np.float64)
        self.bit_rates = np.zeros(0, np.int64)
        self.frames = np.zeros((0, len(FRACTIONS), THUMB, THUMB), np.uint8)
        self.decoded = np.zeros(0, bool)
        signatures = [(row["path"], _signature_of(row)) for row in rows]
        if signatures:      # in one go: a resweep builds it over the whole library
            self.paths = [path for path, _ in signatures]
            self.sha256 = [signature.sha256 for _, signature in signatures]
            self.sizes = np.asarray([[signature.width, signature.height]
                                     for _, signature in signatures], np.int64)
            self.durations = np.asarray([signature.duration for _, signature in signatures])
            self.bit_rates = np.asarray([signature.bit_rate for _, signature in signatures],
                                        np.int64)
            self.frames = np.stack([_frames_of(signature) for _, signature in signatures])
            self.decoded = np.asarray([signature.decoded for _, signature in signatures])

    @classmethod
    def from_store(cls, store) -> "VideoIndex":
        return cls(store.usable_videos())

    def __len__(self) -> int:
        return len(self.paths)

    def add(self, path: str, signature: VideoSignature) -> None:
        self.remove(path)
        frames = _frames_of(signature)
        self.paths.append(path)
        self.sha256.append(signature.sha256)
        self.sizes = np.vstack([self.sizes, [[signature.width, signature.height]]])
        self.durations = np.append(self.durations, signature.duration)
        self.bit_rates = np.append(self.bit_rates, signature.bit_rate)
        self.frames = np.concatenate([self.frames, frames[None]])
        self.decoded = np.append(self.decoded, signature.decoded)

    def remove(self, path: str) -> None:
        if path not in self.paths:
            return
        keep = np.asarray([known != path for known in self.paths])
        self.paths = [known for known in self.paths if known != path]
        self.sha256 = [digest for digest, kept in zip(self.sha256, keep) if kept]
        self.sizes, self.durations = self.sizes[keep], self.durations[keep]
        self.bit_rates, self.frames = self.bit_rates[keep], self.frames[keep]
        self.decoded = self.decoded[keep]

    def match(self, signature: VideoSignature, excluded=frozenset(),
              skip=frozenset()) -> VideoMatch | None:
        """The closest library video ``signature`` is a copy of, or None; videos whose
        SHA-256 is in ``excluded`` or whose path is in ``skip`` are not considered."""
        allowed = np.asarray([digest not in excluded and path not in skip
                              for digest, path in zip(self.sha256, self.paths)], bool)
        exact = np.flatnonzero(allowed & np.asarray(
            [digest == signature.sha256 for digest in self.sha256], bool))
        if len(exact):
            return self._match(int(exact[0]), "exact", 0.0)
        if not signature.decoded or not len(self):
            return None
        distance = self.frame_distances(signature)
        distance[~allowed] = np.inf
        best = int(np.argmin(distance))
        if np.isfinite(distance[best]):
            return self._match(best, "similar", round(float(distance[best]), 4))
        return None

    def frame_distances(self, signature: VideoSignature) -> np.ndarray:
        """Per library video: the largest frame RMS difference in the best rotation that
        passes every test, ``inf`` where none does."""
        distance = np.full(len(self), np.inf)
        tolerance = np.maximum(DURATION_SECONDS, DURATION_TOLERANCE * self.durations)
        plausible = self.decoded & (np.abs(self.durations - signature.duration) <= tolerance)
        query = signature.frame_array().astype(np.float32)
        other = self.frames.astype(np.float32)
        for quarter in range(4):
            aspect = _same_aspect((signature.width, signature.height), self.sizes, quarter)
            chosen = np.flatnonzero(plausible & aspect)
            if not len(chosen):
                continue
            turned = np.rot90(query, quarter, axes=(1, 2))[None]
            difference = turned - other[chosen]
            rms = np.sqrt(np.mean(difference * difference, axis=(2, 3))) / 255.0
            luma = np.abs(turned.mean(axis=(2, 3)) - other[chosen].mean(axis=(2, 3))) / 255.0
            passed = np.all((rms <= FRAME_RMS) & (luma <= FRAME_LUMA), axis=1)
            worst = np.where(passed, rms.max(axis=1), np.inf)
            distance[chosen] = np.minimum(distance[chosen], worst)
        return distance

    def _match(self, position: int, method: str, distance: float) -> VideoMatch:
        width, height = (int(value) for value in self.sizes[position])
        return VideoMatch(self.paths[position], self.sha256[position], method, distance,
                          width, height, int(self.bit_rates[position]))


def _same_aspect(size: tuple[int, int], sizes: np.ndarray, quarter: int) -> np.ndarray:
    width, height = size
    if quarter % 2:
        width, height = height, width
    if not width or not height or not len(sizes):
        return np.zeros(len(sizes), bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (sizes[:, 0] / np.maximum(sizes[:, 1], 1)) / (width / height)
    return np.abs(ratio - 1.0) <= ASPECT_TOLERANCE


def better(signature: VideoSignature, match: VideoMatch, settings: DedupeConfig) -> str:
    """Why the newcomer is clearly the better copy of ``match``, or "" when it is not."""
    pixels, library_pixels = signature.pixels, match.width * match.height
    if settings.keep != "best" or not signature.decoded:
        return ""
    if pixels > settings.best_pixel_ratio * library_pixels:
        return (f"{signature.width}x{signature.height} replaces the smaller "
                f"{match.width}x{match.height} copy")
    same_pixels = library_pixels and max(pixels, library_pixels) <= \
        SAME_PIXELS * min(pixels, library_pixels)
    if same_pixels and signature.bit_rate > BIT_RATE_RATIO * match.bit_rate:
        return (f"{signature.bit_rate // 1000} kbit/s replaces the "
                f"{match.bit_rate // 1000} kbit/s copy")
    return ""


def decide_video(signature: VideoSignature, index: VideoIndex, settings: DedupeConfig,
                 excluded=frozenset()) -> Decision:
    """The gate's verdict on a video against the library's videos."""
    match = index.match(signature, excluded)
    if match is None:
        return Decision(Verdict.PROMOTE)
    evidence = dict(matched_path=match.path, matched_sha256=match.sha256,
                    method=match.method, distance=match.distance)
    if reason := better(signature, match, settings):
        return Decision(Verdict.REPLACE, reason=reason, **evidence)
    return Decision(Verdict.DUPLICATE, reason=f"duplicate of {match.path} ({match.method}, "
                    f"{match.distance})", **evidence)


def _frames_of(signature: VideoSignature) -> np.ndarray:
    if signature.decoded:
        return signature.frame_array()
    return np.zeros((len(FRACTIONS), THUMB, THUMB), np.uint8)


def _signature_of(row) -> VideoSignature:
    return VideoSignature(row["sha256"], row["size"], row["container"], row["width"] or 0,
                          row["height"] or 0, row["duration"] or 0.0, row["bit_rate"] or 0,
                          row["content_identifier"] or "", row["frames"] or b"",
                          (row["mean_r"] or 0.0, row["mean_g"] or 0.0, row["mean_b"] or 0.0))
