"""Bad video input gets a defined outcome, and a machine without PyAV still takes videos.

Each bad file is real: a clip cut short (its index at the end, so lost; or at the front,
so frames are missing), a clip whose container claims a thousand times its real duration,
a zero-length file, an audio-only MP4, and a long stream of tiny frames (signing seeks to
five points and never decodes the stream through).
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.video_signatures import NotAVideo, sign_video
from tests import videos
from tests.test_video_gate import drop_file, reasons

LIMIT = 100_000_000


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad")


def lying(source: Path, target: Path, factor: int = 1000) -> Path:
    """The Matroska clip with its Segment Info Duration (EBML 0x4489) times ``factor``."""
    data = bytearray(source.read_bytes())
    at = data.find(b"\x44\x89")
    kind = {0x88: ">d", 0x84: ">f"}[data[at + 2]]
    width = struct.calcsize(kind)
    value, = struct.unpack(kind, data[at + 3:at + 3 + width])
    data[at + 3:at + 3 + width] = struct.pack(kind, value * factor)
    target.write_bytes(bytes(data))
    return target


def test_each_bad_video_is_refused_with_its_reason(folder):
    whole = videos.clip(folder / "whole.mp4", seed=4)
    front = videos.clip(folder / "front.mp4", seed=4, container_options={
        "movflags": "faststart"})
    cut_end = folder / "cut.mp4"
    cut_end.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    cut_front = folder / "cut-front.mp4"
    cut_front.write_bytes(front.read_bytes()[: front.stat().st_size // 2])
    outcomes = {}
    matroska = videos.clip(folder / "whole.mkv", seed=4, codec="libvpx-vp9")
    for path in (cut_end, cut_front, lying(matroska, folder / "lying.mkv"),
                 videos.audio_only(folder / "voice.m4a")):
        with pytest.raises(NotAVideo) as refused:
            sign_video(path, LIMIT)
        outcomes[path.name] = str(refused.value)
    assert outcomes["cut.mp4"].startswith("corrupt or truncated video: ")
    assert outcomes["cut-front.mp4"].startswith("corrupt or truncated video: ")
    assert outcomes["lying.mkv"].startswith("no frame at 10% of the 2000 s the container")
    assert outcomes["voice.m4a"] == "no video track (audio only)"
    assert sign_video(front, LIMIT).duration == 2.0


def test_a_long_stream_of_tiny_frames_is_signed_by_seeking(folder):
    path = videos.encode(folder / "long.mp4", videos.tiny_frames(3_000), fps=50,
                         options={"preset": "ultrafast", "g": "250"})
    signature = sign_video(path, LIMIT)
    assert signature.duration == 60.0 and signature.decoded
    # the frames really are from 10..90 % of the stream (each tiny frame shows its time)
    means = signature.frame_array().reshape(5, -1).mean(axis=1)
    assert list(means) == sorted(means) and means[-1] - means[0] > 100


def test_bad_videos_through_the_gate(home, folder):
    home.drop("empty.mp4", b"")
    drop_file(home, "voice.m4a", videos.audio_only(folder / "voice2.m4a"))
    home.run("run", check=True)
    assert reasons(home) == {"empty.mp4": ("rejected", "empty file"),
                             "voice.m4a": ("rejected", "no video track (audio only)")}


NO_DECODER = ("import sys; sys.modules['av'] = None; "
              "from pipeline.cli import main; sys.exit(main(sys.argv[1:]))")


def test_without_pyav_videos_are_taken_and_deduplicated_exactly(home, folder):
    original = videos.clip(folder / "plain.mp4", seed=6)
    worse = videos.clip(folder / "plain-worse.mp4", seed=6, options={"crf": "40"})
    drop_file(home, "clip.mp4", original)
    drop_file(home, "copy.mp4", original)
    drop_file(home, "worse.mp4", worse)
    result = subprocess.run([sys.executable, "-c", NO_DECODER, "run"], env=home.env,
                            cwd=home.path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("similar-video matching is off") == 1, result.stderr
    found = reasons(home)
    assert found["clip.mp4"][0] == "promoted" and found["worse.mp4"][0] == "promoted"
    assert found["copy.mp4"][0] == "quarantined" and "(exact, 0" in found["copy.mp4"][1]
