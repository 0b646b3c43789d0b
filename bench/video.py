"""Video figures: signing cost against decoding the same frames, peak memory of a run
that takes a 200 MB clip (the whole process group), and a 500,000-frame stream.

    ~/.cache/frame-ingest/test-venv/bin/python bench/video.py [--workdir DIR] [--clips 5]

The small clips are encoded with PyAV (tests/videos.py); the 200 MB clip (1080p, 30 fps,
19 Mbit/s, a key frame a second, as a phone films) and the 500,000-frame stream (16x16 at
1000 fps) are encoded once with the ffmpeg command line (apt: ffmpeg) into --workdir and
reused. Memory is the sum of the resident set of every process in the run's process group,
sampled every 10 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import video_decode  # noqa: E402
from pipeline.video_signatures import FRACTIONS, sign_video  # noqa: E402

MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


def ffmpeg(*arguments: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *arguments], check=True, timeout=1800)


def phone_clip(path: Path) -> Path:
    if not path.exists():
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", "80", "-vf",
               "noise=alls=20:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
               "-b:v", "19M", "-maxrate", "20M", "-bufsize", "20M", "-pix_fmt", "yuv420p",
               str(path))
    return path


def tiny_stream(path: Path) -> Path:
    if not path.exists():
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=16x16:rate=1000", "-frames:v", "500000",
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
    return path


def signing_cost(folder: Path, count: int) -> None:
    from pipeline.signatures import band_statistics, make_thumb
    from pipeline.video_signatures import file_sha256
    from tests import videos
    print(f"signing cost, {count} clips of 640x360, 10 s, H.264 (fastest of 5 runs each):")
    print("  clip   sign_video   decode the same 5 frames   hash + 5 thumbnails   "
          "decode every frame")
    for number in range(count):
        path = videos.clip(folder / f"clip-{number}.mp4", seed=100 + number, seconds=10,
                           size=(640, 360))
        sign = min(_timed(lambda: sign_video(path, 10**9)) for _ in range(5))
        decode = min(_timed(lambda: video_decode.probe_and_frames(
            path, FRACTIONS, 10**9)) for _ in range(5))
        _, frames = video_decode.probe_and_frames(path, FRACTIONS, 10**9)
        rest = min(_timed(lambda: (file_sha256(path), [make_thumb(frame.image)
                                                      for frame in frames],
                                   band_statistics(frames[2].image))) for _ in range(5))
        every = min(_timed(lambda: _decode_all(path)) for _ in range(3))
        print(f"  {number:4d}   {sign * 1000:7.1f} ms   {decode * 1000:16.1f} ms"
              f"   {rest * 1000:15.2f} ms   {every * 1000:14.1f} ms")


def _decode_all(path: Path) -> None:
    import av
    with av.open(str(path)) as container:
        for _ in container.decode(video=0):
            pass


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def group_rss(group: int) -> int:
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == group:         # field 5: process group id
                total += int(fields[21]) * PAGE  # field 24: rss in pages
        except (OSError, IndexError, ValueError):
            continue
    return total


def measured(command: list[str], env: dict, cwd: Path) -> tuple[float, int, str]:
    """(seconds, peak process-group RSS in bytes, stderr) of ``command``."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, group_rss(process.pid))
        time.sleep(0.01)
    _, stderr = process.communicate()
    return time.perf_counter() - started, peak, stderr


def run_on(clip: Path, folder: Path) -> tuple[float, int, str]:
    home = Path(tempfile.mkdtemp(dir=folder, prefix="home-"))
    (home / "PhotoInbox").mkdir()
    target = home / "PhotoInbox" / clip.name
    os.link(clip, target) if clip.stat().st_dev == home.stat().st_dev else \
        target.write_bytes(clip.read_bytes())
    os.utime(target, (time.time() - 120,) * 2)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("FRAME_INGEST", "XDG_"))}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    return measured([sys.executable, "-m", "pipeline", "run"], env, home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/frame-ingest-bench-video"))
    parser.add_argument("--clips", type=int, default=5)
    arguments = parser.parse_args()
    folder = arguments.workdir
    folder.mkdir(parents=True, exist_ok=True)
    signing_cost(folder, arguments.clips)

    clip = phone_clip(folder / "phone-200mb.mp4")
    seconds, peak, stderr = run_on(clip, folder)
    verdict = [line for line in stderr.splitlines() if clip.name in line][-1:]
    print(f"run on a {clip.stat().st_size / MIB:.0f} MiB clip: {seconds:.1f} s, peak RSS of "
          f"the process group {peak / MIB:.0f} MiB (budget 150 MiB); {verdict}")

    stream = tiny_stream(folder / "tiny-500000.mp4")
    seconds, peak, stderr = measured(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from pipeline.video_signatures import sign_video; "
         f"s = sign_video(Path({str(stream)!r}), 10**9); "
         "print(s.duration, s.decoded, file=sys.stderr)"],
        dict(os.environ, PYTHONPATH=str(ROOT)), ROOT)
    print(f"500,000-frame stream ({stream.stat().st_size / MIB:.1f} MiB): signed in "
          f"{seconds:.2f} s (budget 120 s), peak RSS {peak / MIB:.0f} MiB; "
          f"duration, decoded: {stderr.strip().splitlines()[-1:]}")


if __name__ == "__main__":
    main()
