"""The review page shows a video by its poster frame and duration; the two helpers the
LAN page calls (``poster_frame``, ``duration_seconds``) answer None for what is no video."""

from __future__ import annotations

import re

from PIL import Image

from pipeline.video_decode import duration_seconds, poster_frame
from tests import videos
from tests.test_video_gate import drop_file


def test_poster_and_duration(tmp_path):
    turned = videos.clip(tmp_path / "tagged.mov", seed=9, rotation=90, seconds=1.4)
    poster = poster_frame(turned)
    assert poster is not None and poster.size == (120, 160)    # upright, as played
    assert duration_seconds(turned) == 1.4
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(100))
    assert poster_frame(junk) is None and duration_seconds(junk) is None
    assert poster_frame(tmp_path / "missing.mp4") is None


def test_the_review_page_shows_a_quarantined_video_beside_its_library_copy(home, tmp_path):
    original = videos.clip(tmp_path / "a.mp4", seed=9)
    worse = videos.clip(tmp_path / "b.mp4", seed=9, options={"crf": "40"})
    drop_file(home, "first.mp4", original)
    home.run("run", check=True)
    drop_file(home, "second.mp4", worse)
    home.run("run", check=True)
    output = tmp_path / "review"
    home.run("review", "--output", str(output), check=True)
    page = (output / "index.html").read_text()
    assert page.count("(video, 2.0 s)</figcaption>") == 2
    thumbs = re.findall(r'src="(thumbs/[0-9a-f]+\.jpg)"', page)
    assert len(thumbs) == 2
    for thumb in thumbs:
        with Image.open(output / thumb) as image:
            assert image.format == "JPEG" and max(image.size) == 160
