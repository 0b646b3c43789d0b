"""Measure the IMAP source: messages per second and peak memory of `frame-ingest fetch imap`.

Starts a throwaway Dovecot on 127.0.0.1 (tests/support/dovecot.py), appends N messages with
one photo each plus one message carrying a large attachment, and runs the real command line
in a temporary HOME. Prints the figures; asserts nothing.

    python3 bench/imap_fetch.py [N] [BIG_MB]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import mails  # noqa: E402
from tests.imap_helpers import PASSWORD, write_config  # noqa: E402
from tests.support.dovecot import DovecotServer  # noqa: E402


class Home:
    def __init__(self, path: Path):
        self.path = path


def run(home: Path, config: str, *arguments: str) -> tuple[float, int]:
    """Seconds and peak RSS (MB) of one frame-ingest subprocess."""
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(ROOT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "-q", "--config", config, *arguments],
                   env=env, check=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) // 1024


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    big_mb = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    photo = mails.picture(1, (1600, 1200))
    with DovecotServer(users={"frame": PASSWORD}) as server, \
            tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        for number in range(count):
            server.append("frame", "bench", mails.with_images([(f"p{number}.jpg", photo)]),
                          create=True)
        config = write_config(Home(home), server, "bench")
        seconds, peak = run(home, config, "fetch", "imap")
        print(f"{count} messages with a {len(photo) / 1e3:.0f} KB photo each: {seconds:.2f} s "
              f"({count / seconds:.1f} messages/s, including ~0.3 s start-up), "
              f"peak RSS {peak} MB")
        big = os.urandom(int(big_mb * 1e6))  # incompressible, like a video clip
        letter = mails.message()
        letter.add_attachment(photo, maintype="image", subtype="jpeg", filename="small.jpg")
        letter.add_attachment(big, maintype="application", subtype="octet-stream",
                              filename="clip.mov")
        server.append("frame", "big", letter.as_bytes(), create=True)
        config = write_config(Home(home), server, "big", name="big.toml")
        seconds, peak = run(home, config, "fetch", "imap")
        print(f"one message with a {big_mb:g} MB attachment: {seconds:.2f} s, "
              f"peak RSS of that run or an earlier one {peak} MB")


if __name__ == "__main__":
    main()
