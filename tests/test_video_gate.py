"""Videos through the real command line: taken from the inbox, deduplicated, best copy kept.

Every clip is really encoded by PyAV (tests/videos.py): H.264 MP4, HEVC MOV, VP9 WebM, and
the copies families send again: re-encoded at a lower quality, resized, rotated by a tag or
in its pixels; and a different clip of the same scene (the same pan, 3 s later).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time

import pytest
from PIL import Image

from tests import videos


def drop_file(home, name, source, age=60):
    home.inbox.mkdir(parents=True, exist_ok=True)
    target = home.inbox / name
    target.write_bytes(source.read_bytes())
    stamp = time.time() - age
    os.utime(target, (stamp, stamp))


def reasons(home):
    with sqlite3.connect(home.state_dir / "store.sqlite3") as db:
        return {row[0]: (row[1], row[2] or "") for row in
                db.execute("SELECT name, verdict, reason FROM decisions ORDER BY id")}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {
        "original.mp4": videos.clip(folder / "original.mp4", seed=1),
        "worse.mp4": videos.clip(folder / "worse.mp4", seed=1, options={"crf": "40"}),
        "tagged.mov": videos.clip(folder / "tagged.mov", seed=1, rotation=90),
        "turned.mp4": videos.clip(folder / "turned.mp4", seed=1, turn=3),
        "later.mp4": videos.clip(folder / "later.mp4", seed=1, start=3.0),
        "hevc.mov": videos.clip(folder / "hevc.mov", seed=2, codec="libx265"),
        "vp9.webm": videos.clip(folder / "vp9.webm", seed=3, codec="libvpx-vp9"),
        "bigger.mp4": videos.clip(folder / "bigger.mp4", seed=2, size=(320, 240)),
        "richer.mp4": videos.clip(folder / "richer.mp4", seed=3, codec="libvpx-vp9",
                                  options={"crf": "4", "b": "0"}),
    }


def test_copies_of_a_clip_are_quarantined_and_a_later_clip_is_kept(home, clips):
    drop_file(home, "original.mp4", clips["original.mp4"])
    home.run("run", check=True)
    for name in ("worse.mp4", "tagged.mov", "turned.mp4", "later.mp4"):
        drop_file(home, name, clips[name])
    home.run("run", check=True)
    assert home.files(home.pictures) == ["later.mp4", "original.mp4"]
    found = reasons(home)
    for name in ("worse.mp4", "tagged.mov", "turned.mp4"):
        verdict, reason = found[name]
        assert verdict == "quarantined" and "duplicate of original.mp4 (similar" in reason
    assert sorted(path.rsplit("/", 1)[1] for path in home.files(home.quarantine)) == \
        ["tagged.mov", "turned.mp4", "worse.mp4"]
    # the review page shows each by its poster frame and duration, beside original.mp4
    output = home.path / "review"
    home.run("review", "--output", str(output), check=True)
    page = (output / "index.html").read_text()
    assert page.count("(video, 2.0 s)</figcaption>") == 6
    thumbs = set(re.findall(r'src="(thumbs/[0-9a-f]+\.jpg)"', page))
    assert len(thumbs) == 4
    for thumb in thumbs:
        with Image.open(output / thumb) as image:
            assert image.format == "JPEG" and max(image.size) == 160


def test_an_exact_copy_and_the_better_copy(home, clips):
    drop_file(home, "hevc.mov", clips["hevc.mov"])
    drop_file(home, "vp9.webm", clips["vp9.webm"])
    home.run("run", check=True)
    drop_file(home, "again.mov", clips["hevc.mov"])
    drop_file(home, "bigger.mp4", clips["bigger.mp4"])
    home.run("run", check=True)
    found = reasons(home)
    assert found["again.mov"][0] == "quarantined" and "(exact, 0" in found["again.mov"][1]
    assert found["bigger.mp4"] == ("replaced", "320x240 replaces the smaller 160x120 copy")
    assert home.files(home.pictures) == ["bigger.mp4", "vp9.webm"]



def test_the_resweep_counts_videos_and_quarantines_copies_around_the_best(home, clips):
    home.pictures.mkdir(parents=True)
    for name in ("original.mp4", "worse.mp4", "later.mp4", "hevc.mov", "bigger.mp4"):
        (home.pictures / name).write_bytes(clips[name].read_bytes())
    (home.pictures / "photo.jpg").write_bytes(images_jpeg())
    result = home.run("resweep", check=True)
    assert "scanned=6" in result.stderr and "quarantined=2" in result.stderr, result.stderr
    assert home.files(home.pictures) == ["bigger.mp4", "later.mp4", "original.mp4",
                                         "photo.jpg"]
    again = home.run("resweep", check=True)
    assert "scanned=4 signed=0 unchanged=4" in again.stderr, again.stderr


def images_jpeg() -> bytes:
    from tests import mails
    return mails.picture(5)


def test_a_quarantined_video_is_restored_and_never_taken_for_that_copy_again(home, clips):
    drop_file(home, "original.mp4", clips["original.mp4"])
    drop_file(home, "worse.mp4", clips["worse.mp4"])
    home.run("run", check=True)
    restored = home.run("quarantine", "restore", "worse.mp4", check=True)
    assert "Traceback" not in restored.stderr
    assert home.files(home.pictures) == ["original.mp4", "worse.mp4"]
    result = home.run("resweep", check=True)
    assert "quarantined=0" in result.stderr and "scanned=2" in result.stderr, result.stderr


def test_a_wrong_video_setting_stops_with_one_line(home):
    config = home.path / "config.toml"
    for text, expected in (
            ('live_photos = "motion"', '[video] live_photos: expected one of "still", '
                                       '"both", "video", got "motion"'),
            ('formats = [".mp4", ".gif"]', "[video] formats: '.gif' is not a video "
                                           "container frame-ingest reads")):
        config.write_text(f"[video]\n{text}\n")
        result = home.run("--config", str(config), "run")
        assert result.returncode == 2 and "Traceback" not in result.stderr
        line, = result.stderr.strip().splitlines()
        assert line.startswith(f"error: {config}: ") and expected in line, line
