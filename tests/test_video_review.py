"""The two helpers the pages call (``poster_frame``, ``duration_seconds``): upright, as
played, and None for what is no video. (The review page itself: tests/test_video_gate.py.)"""

from __future__ import annotations

from pipeline.video_decode import duration_seconds, poster_frame
from tests import videos


def test_poster_and_duration(tmp_path):
    turned = videos.clip(tmp_path / "tagged.mov", seed=9, rotation=90, seconds=1.4)
    poster = poster_frame(turned)
    assert poster is not None and poster.size == (120, 160)    # upright, as played
    assert duration_seconds(turned) == 1.4
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(100))
    assert poster_frame(junk) is None and duration_seconds(junk) is None
    assert poster_frame(tmp_path / "missing.mp4") is None
