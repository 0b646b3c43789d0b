"""The one PyAV boundary: open a video, read what it says about itself, decode a few frames.

PyAV (``av``) binds FFmpeg's own libraries and ships them in its wheels (x86-64 and
aarch64; there is no armv7l wheel, so a 32-bit Raspberry Pi OS has no decoder). Without
it ``available()`` is False: videos are still taken and deduplicated exactly (SHA-256),
and ``unavailable_reason()`` is the line the run logs once.

Every decode here is bounded whatever the file claims:

- at most ``len(fractions)`` seeks, each followed by at most ``FRAMES_PER_SEEK`` decoded
  frames (a point that close to the last frame decoded is reached by decoding on instead):
  a stream of 500,000 tiny frames, or one without key frames, costs that and no more;
  nothing is ever decoded from the start to a point;
- frames are scaled down by FFmpeg's scaler before they reach Python (``SIDE`` pixels on
  the long side), and the full frame size is checked against ``max_pixels`` before the
  first decode;
- ``DECODER_THREADS`` decoder threads; a wall-clock ``DEADLINE_SECONDS`` per file (past
  it the video is kept and matched by exact copy only: ``TooSlow``).

FFmpeg errors (a truncated file, garbage) become ``Undecodable`` with a one-line reason.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

log = logging.getLogger("frame-ingest")

FRAMES_PER_SEEK = 120       # decoded after a seek before giving up on reaching the point
SIDE = 128                  # long side of the frames handed to Python
POSTER_SIDE = 640
DEADLINE_SECONDS = 20.0
DECODER_THREADS = 2         # FFmpeg's frame threads: each holds a frame (6 MB at 1080p)
SLACK_SECONDS, SLACK_FRACTION = 0.5, 0.05   # how far before a point the stream may end
CONTENT_IDENTIFIER = "com.apple.quicktime.content.identifier"

_loaded: dict = {}             # "av": the module, or "error": why it cannot be imported


def _av():
    """PyAV, imported on first use (a run without videos never loads FFmpeg: about 30 MB
    of libraries); None when it is not installed (32-bit Raspberry Pi OS)."""
    if not _loaded:
        try:
            import av
            _loaded["av"] = av
        except ImportError as exc:
            _loaded["av"] = None
            _loaded["error"] = str(exc) or "No module named 'av'"
    return _loaded["av"]


class Undecodable(Exception):
    """The file cannot be read as a video; the message is the one-line reason."""


class TooSlow(Undecodable):
    """Decoding the sampled frames took longer than ``DEADLINE_SECONDS`` (a huge frame
    size on a slow Pi, a pathological stream): the file itself may be fine."""


def available() -> bool:
    return _av() is not None


def unavailable_reason() -> str:
    return (f"PyAV (the FFmpeg binding) is not installed ({_loaded.get('error', '')}): videos are "
            "taken and deduplicated by exact copy only; similar-video matching is off")


@dataclass(frozen=True)
class Probe:
    """What a video container says about itself (and its first video stream)."""

    container: str              # FFmpeg's demuxer name: "mov,mp4,m4a,3gp,3g2,mj2", ...
    width: int                  # as displayed (rotation applied)
    height: int
    duration: float             # seconds, as the container claims
    bit_rate: int               # bits per second (container's figure, or size / duration)
    rotation: int               # degrees counter-clockwise the player turns the picture
    codec: str
    content_identifier: str     # Apple's Live Photo id, "" when none


@dataclass(frozen=True)
class Frame:
    fraction: float
    seconds: float
    image: Image.Image          # RGB, long side <= SIDE, upright (rotation applied)
    rotation: int = 0           # the display rotation that was applied


def probe_and_frames(path: Path, fractions: tuple[float, ...], max_pixels: int,
                     side: int = SIDE) -> tuple[Probe, list[Frame]]:
    """Open ``path``, describe it and decode one frame at each fraction of its duration.

    Raises ``Undecodable`` when it opens as no video at all (or has no video track) or a
    frame at some fraction cannot be reached (truncated, or the container's duration is a
    lie): the caller decides what such a file becomes."""
    av = _av()
    if av is None:
        raise Undecodable(unavailable_reason())
    started = time.monotonic()
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            probe, stream = _probe(container, path)
            if probe.width * probe.height > max_pixels:
                raise Undecodable(f"video frames of {probe.width}x{probe.height} pixels are "
                                  f"more than the limit of {max_pixels}")
            reader = _Reader(container, stream, probe, started)
            frames = [reader.frame_at(fraction, side) for fraction in fractions]
            probe = _turned(probe, frames)
    except Undecodable:
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError, MemoryError) as exc:
        raise Undecodable(f"corrupt or truncated video: {_short(exc)}") from None
    return probe, frames


def _probe(container, path: Path):
    if not container.streams.video:
        what = "audio only" if container.streams.audio else "no streams"
        raise Undecodable(f"no video track ({what})")
    stream = container.streams.video[0]
    stream.codec_context.thread_count = DECODER_THREADS
    width, height = stream.codec_context.width, stream.codec_context.height
    if not width or not height:
        raise Undecodable("corrupt video: its video track has no picture size")
    duration = 0.0
    if container.duration:
        duration = container.duration / 1_000_000
    elif stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    if duration <= 0:
        raise Undecodable("corrupt video: no duration in the container")
    rotation = _rotation(stream)
    if rotation % 180:
        width, height = height, width
    size = path.stat().st_size
    bit_rate = int(container.bit_rate or size * 8 / duration)
    metadata = {**container.metadata, **stream.metadata}
    return Probe(container=container.format.name, width=width, height=height,
                 duration=round(duration, 3), bit_rate=bit_rate, rotation=rotation,
                 codec=stream.codec_context.name,
                 content_identifier=str(metadata.get(CONTENT_IDENTIFIER, ""))), stream


def _turned(probe: Probe, frames: list["Frame"]) -> Probe:
    """The probe with the rotation the decoded frames carried (their display matrix)."""
    if not frames or frames[0].rotation == probe.rotation:
        return probe
    width, height = probe.width, probe.height
    if (frames[0].rotation - probe.rotation) % 180:
        width, height = height, width
    return dataclasses.replace(probe, width=width, height=height,
                               rotation=frames[0].rotation)


def _rotation(stream) -> int:
    """The display rotation (degrees counter-clockwise, 0/90/180/270) of the stream."""
    angle = 0.0
    side_data = getattr(stream, "side_data", None)
    try:
        if side_data is not None and "DISPLAYMATRIX" in side_data:
            angle = float(side_data["DISPLAYMATRIX"])
    except (TypeError, ValueError):
        angle = 0.0
    if not angle:
        angle = float(stream.metadata.get("rotate", 0) or 0) * -1
    return int(round(angle / 90.0)) * 90 % 360


class _Reader:
    """Frames at ascending points of one stream. A point within ``FRAMES_PER_SEEK``
    frames of the last one decoded is reached by decoding on; a farther one by a seek to
    the key frame before it (then decoding on from there, at most ``FRAMES_PER_SEEK``)."""

    def __init__(self, container, stream, probe: Probe, started: float):
        self.container, self.stream, self.probe, self.started = \
            container, stream, probe, started
        self.start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        rate = stream.average_rate or stream.guessed_rate or 30
        self.frame_seconds = 1.0 / float(rate)
        self.frames = None          # the decode iterator, None before the first seek
        self.position = -1.0        # seconds of the last decoded frame

    def frame_at(self, fraction: float, side: int) -> Frame:
        target = self.probe.duration * fraction
        if self.frames is None or \
                target - self.position > FRAMES_PER_SEEK * self.frame_seconds:
            self.container.seek(int((self.start + target) / self.stream.time_base),
                                stream=self.stream, backward=True, any_frame=False)
            self.frames = self.container.decode(self.stream)
        best, reached = None, False
        for count, frame in enumerate(self.frames):
            if time.monotonic() - self.started > DEADLINE_SECONDS:
                raise TooSlow(f"decoding its frames took longer than {DEADLINE_SECONDS:g} s")
            seconds = float(frame.time or 0.0) - self.start
            self.position = seconds
            best = (frame, seconds)
            if seconds >= target - 1e-3 or count + 1 >= FRAMES_PER_SEEK:
                reached = True
                break
        # the stream ended before the point: fine within a frame or two of the end, else
        # the file was cut short or its container claims more than its frames hold
        slack = max(SLACK_SECONDS, SLACK_FRACTION * self.probe.duration)
        if best is None or (not reached and target - best[1] > slack):
            raise Undecodable(f"no frame at {fraction:.0%} of the {self.probe.duration:g} s "
                              "the container claims (truncated, or the duration is wrong)")
        frame, seconds = best
        rotation = getattr(frame, "rotation", None)
        rotation = self.probe.rotation if rotation is None else \
            int(round(rotation / 90.0)) * 90 % 360
        return Frame(fraction, round(seconds, 3), _upright(frame, rotation, side), rotation)


def _upright(frame, rotation: int, side: int) -> Image.Image:
    scale = side / max(frame.width, frame.height)
    width = max(2, int(round(frame.width * scale / 2)) * 2) if scale < 1 else frame.width
    height = max(2, int(round(frame.height * scale / 2)) * 2) if scale < 1 else frame.height
    image = frame.reformat(width=width, height=height, format="rgb24").to_image()
    if rotation:
        image = image.rotate(rotation, expand=True)
    return image


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def duration_seconds(path: Path) -> float | None:
    """The duration a video claims (seconds), or None when it is no readable video."""
    av = _av()
    if av is None:
        return None
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            probe, _ = _probe(container, Path(path))
            return probe.duration
    except (Undecodable, av.error.FFmpegError, OSError, ValueError, IndexError):
        return None


def poster_frame(path: Path) -> Image.Image | None:
    """An upright RGB frame from a tenth into the video (long side <= 640), or None."""
    try:
        _, frames = probe_and_frames(Path(path), (0.1,), max_pixels=200_000_000,
                                     side=POSTER_SIDE)
    except (Undecodable, OSError):
        return None
    return frames[0].image
