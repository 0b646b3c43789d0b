"""The gate's video branch: is a staged item a video, and what becomes of it.

``run.judge`` asks ``container_of`` first (by the bytes, never by the name); a video is
then checked against ``[video]`` (switched on, its container in ``formats``, at most
``max_video_mb``), signed (``video_signatures``) and decided against the library's videos
(``video_matching.decide_video``). Bad input is a ``REJECT`` with its one-line reason.
"""

from __future__ import annotations

from pipeline.config import MIB, Config
from pipeline.items import Decision, StagedItem, Verdict
from pipeline.video_formats import sniff_video_file, taken
from pipeline.video_matching import VideoIndex, decide_video
from pipeline.video_signatures import NotAVideo, VideoSignature, sign_video


def container_of(item: StagedItem) -> str | None:
    """The video container of a staged item's bytes, or None (then it is a photo or junk)."""
    try:
        return sniff_video_file(item.data_path)
    except OSError:
        return None


def judge_video(config: Config, store, videos: VideoIndex, item: StagedItem,
                container: str) -> tuple[VideoSignature | None, Decision]:
    settings = config.video
    if not settings.enabled:
        return None, Decision(Verdict.REJECT, reason="a video, and [video] enabled = false")
    if not taken(container, settings.formats):
        return None, Decision(Verdict.REJECT, reason=f"a {container} video, not in "
                              f"[video] formats")
    if item.size > settings.max_video_bytes:
        return None, Decision(Verdict.REJECT, reason=(
            f"video too large: {item.size / MIB:.1f} MiB (limit "
            f"{settings.max_video_mb:g} MiB, [video] max_video_mb)"))
    try:
        signature = sign_video(item.data_path, config.gate.max_pixels)
    except NotAVideo as exc:
        return None, Decision(Verdict.REJECT, reason=str(exc))
    excluded = store.overridden_partners(signature.sha256)
    return signature, decide_video(signature, videos, config.dedupe, excluded)
