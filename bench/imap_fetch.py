"""Measure the IMAP source: peak memory of `frame-ingest run` on big mail, and fetch speed.

Starts a throwaway Dovecot on 127.0.0.1 (tests/support/dovecot.py) and, each in a fresh HOME
and folder, runs the real command line on:

- one message with one 20 MB photo (a noisy 4000x3000 JPEG at high quality);
- one message with 40 photos (1600x1200, ~0.4 MB each);
- one message with a 150 MB video (video/quicktime, incompressible) beside a photo;
- 100 messages with one photo each (the time of ``fetch imap``).

Prints for each the seconds, the peak RSS of the frame-ingest process itself (VmHWM, read
by the process at exit: not ru_maxrss, which carries the benchmark's own high-water mark
across exec), the bytes Dovecot sent (its logout lines' ``out=``) and the run's summary.
Asserts nothing.

    python3 bench/imap_fetch.py [--max-message-mb MB] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import images, mails  # noqa: E402
from tests.imap_helpers import write_config  # noqa: E402
from tests.support.dovecot import DovecotServer  # noqa: E402

CHILD = """
import json, sys
from pipeline.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print("BENCH-PEAK " + json.dumps(peak / 1024), file=sys.stderr)
sys.exit(code)
"""


class Home:
    def __init__(self, path: Path):
        self.path = path


def noisy_jpeg(megabytes: float, size: tuple[int, int] = (4000, 3000)) -> bytes:
    """A JPEG of about ``megabytes`` MB: smooth shapes under fine noise (costly to encode)."""
    generator = np.random.default_rng(20)
    base = np.asarray(images.painting(7, (size[0] // 8, size[1] // 8), octaves=(3, 6)))
    base = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))[:size[1], :size[0]]
    for quality in (92, 95, 97, 98, 99, 100):
        noise = generator.integers(-40, 40, base.shape, dtype=np.int16)
        pixels = np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
        if buffer.tell() >= megabytes * 1e6 * 0.95:
            break
    return buffer.getvalue()


def scenarios(only: set[str]) -> dict[str, list[bytes]]:
    """Name -> the raw messages of that scenario (built only when asked for)."""
    builders = {
        "photo-20mb": lambda: [mails.with_images([("big.jpg", noisy_jpeg(20))])],
        "photos-40": lambda: [mails.with_images(
            [(f"p{number}.jpg", mails.picture(100 + number, (1600, 1200)))
             for number in range(40)])],
        "video-150mb": lambda: [video_mail(150)],
        "messages-100": lambda: [mails.with_images(
            [(f"m{number}.jpg", mails.picture(300 + number, (1600, 1200)))])
            for number in range(100)],
    }
    return {name: build() for name, build in builders.items() if not only or name in only}


def video_mail(megabytes: float) -> bytes:
    letter = mails.message(subject="the party")
    letter.add_attachment(mails.picture(9, (1600, 1200)), maintype="image", subtype="jpeg",
                          filename="photo.jpg")
    letter.add_attachment(os.urandom(int(megabytes * 1e6)), maintype="video",
                          subtype="quicktime", filename="clip.mov")
    return letter.as_bytes()


def sent_bytes(log: str) -> int:
    """What Dovecot sent to clients, from its logout lines (``out=N``)."""
    return sum(int(value) for value in re.findall(r"\bout=(\d+)", log))


def run(home: Path, config: str, *arguments: str) -> tuple[float, float, str]:
    """Seconds, peak RSS (MiB) and the summary line of one frame-ingest process."""
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, "--config", config, *arguments],
                            env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    peak = next((json.loads(line.split(" ", 1)[1]) for line in result.stderr.splitlines()
                 if line.startswith("BENCH-PEAK ")), float("nan"))
    summary = next((line for line in result.stderr.splitlines()
                    if line.startswith(("run:", "fetch:"))), result.stderr.strip()[-300:])
    return seconds, peak, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-message-mb", type=float, default=None,
                        help="set [sources.imap] max_message_mb (default: the built-in one)")
    parser.add_argument("--only", nargs="*", default=[], help="scenario names to run")
    options = parser.parse_args()
    extra = ({"max_message_mb": options.max_message_mb}
             if options.max_message_mb is not None else {})
    with DovecotServer(users={"frame": "secret"}) as server, \
            tempfile.TemporaryDirectory() as directory:
        for name, messages in scenarios(set(options.only)).items():
            home = Path(directory) / name
            home.mkdir()
            for raw in messages:
                server.append("frame", name, raw, create=True)
            size = sum(len(raw) for raw in messages)
            config = write_config(Home(home), server, name, password="secret", **extra)
            command = ("fetch", "imap") if name == "messages-100" else ("run",)
            before = server.log().count("Logged out")
            sent_before = sent_bytes(server.log())
            seconds, peak, summary = run(home, config, *command)
            deadline = time.monotonic() + 10  # Dovecot logs the logout a moment later
            while server.log().count("Logged out") <= before and time.monotonic() < deadline:
                time.sleep(0.05)
            sent = sent_bytes(server.log()) - sent_before
            print(f"{name}: {len(messages)} message(s), {size / 1e6:.1f} MB as stored; "
                  f"`{' '.join(command)}` {seconds:.2f} s, peak RSS {peak:.0f} MiB, "
                  f"Dovecot sent {sent / 1e6:.1f} MB; {summary}", flush=True)
            del messages


if __name__ == "__main__":
    main()
