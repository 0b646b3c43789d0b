"""A video -> its signature: SHA-256 of the bytes, and a few decoded frames.

The frames are taken at fixed fractions of the duration (``FRACTIONS``: 10, 30, 50, 70 and
90 %), turned upright by the rotation the player applies, and each is signed the way a
photo is (``signatures.make_thumb``: a 32x32 area-averaged grayscale thumbnail, and the
band means of the frame). With the duration, the displayed size and the bit rate, that is
what ``video_matching`` compares. Without a decoder (``video_decode.available()`` False)
the signature holds the digest and the container only: exact copies still match.

A file that is no usable video raises ``NotAVideo`` with the one-line reason the gate
rejects it with (empty, no video track, truncated, a duration its frames do not reach).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import video_decode
from pipeline.signatures import THUMB, band_statistics, make_thumb
from pipeline.video_formats import sniff_video_file

log = logging.getLogger("frame-ingest")

FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
READ_BLOCK = 1024 * 1024


class NotAVideo(Exception):
    """Raised when a file cannot be used as a video; the message is the reason."""


@dataclass(frozen=True)
class VideoSignature:
    sha256: str
    size: int                   # bytes
    container: str              # MP4, MOV, MKV, WEBM, AVI, FLV, HEVC (video_formats)
    width: int = 0              # as displayed; 0 when not decoded
    height: int = 0
    duration: float = 0.0       # seconds
    bit_rate: int = 0           # bits per second
    content_identifier: str = ""
    frames: bytes = b""         # len(FRACTIONS) thumbnails of THUMB*THUMB bytes, or b""
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)   # band means of the middle frame

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def decoded(self) -> bool:
        return bool(self.frames)

    def frame_array(self) -> np.ndarray:
        return np.frombuffer(self.frames, dtype=np.uint8).reshape(-1, THUMB, THUMB)


_told: set[str] = set()


def _announce_no_decoder() -> None:
    """Say once per process (a run) why similar-video matching is off."""
    if "decoder" not in _told:
        _told.add("decoder")
        log.warning("video: %s", video_decode.unavailable_reason())


def file_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(READ_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def sign_video(path: Path, max_pixels: int) -> VideoSignature:
    """Sign the video at ``path`` (raises ``NotAVideo`` with the reason)."""
    try:
        sha256, size = file_sha256(path)
        container = sniff_video_file(path) if size else None
    except OSError as exc:
        raise NotAVideo(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise NotAVideo("empty file")
    if container is None:
        raise NotAVideo("not a video (no known video container in the bytes)")
    if not video_decode.available():
        _announce_no_decoder()
        return VideoSignature(sha256, size, container)
    try:
        probe, frames = video_decode.probe_and_frames(path, FRACTIONS, max_pixels)
    except video_decode.TooSlow as exc:     # taken, matched by exact copy only
        log.warning("%s: %s; it is matched by exact copy only", path.name, exc)
        return VideoSignature(sha256, size, container)
    except video_decode.Undecodable as exc:
        raise NotAVideo(str(exc)) from None
    thumbs = [make_thumb(frame.image) for frame in frames]
    mean, _ = band_statistics(frames[len(frames) // 2].image)
    return VideoSignature(sha256, size, container, probe.width, probe.height,
                          probe.duration, probe.bit_rate, probe.content_identifier,
                          b"".join(thumb.tobytes() for thumb in thumbs), mean)
