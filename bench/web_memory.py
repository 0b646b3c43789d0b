"""Resident memory of `frame-ingest serve`: idle, and while serving a quarantine of 500.

    ~/.cache/frame-ingest/test-venv/bin/python bench/web_memory.py [--entries 500]

Builds a throwaway HOME, files one photo and then ``--entries`` recompressed copies of it
with the real `frame-ingest run` (so quarantine holds that many real files and decisions),
sets a password, starts `serve` and reads VmRSS / VmHWM from /proc: after start-up, after
a login, after every quarantine page (20 entries each) and the previews of the first page,
and after a second pass. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import images  # noqa: E402
from tests.conftest import make_home  # noqa: E402
from tests.web_support import (Site, free_port, ids, serve, set_password, stop,  # noqa: E402
                               write_config)


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {key: int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) / 1024
              for key in ("VmRSS", "VmHWM")}
    return values["VmRSS"], values["VmHWM"]


def copies(count: int) -> list[bytes]:
    """``count`` distinct JPEG files of one 800x533 photo (quality and one pixel vary)."""
    picture = images.photo(7).resize((800, 533))
    made = []
    for number in range(count):
        variant = picture.copy()
        variant.putpixel((number % 800, number // 800), (number % 256, 0, 0))
        buffer = io.BytesIO()
        variant.save(buffer, "JPEG", quality=60 + number % 35)
        made.append(buffer.getvalue())
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=500)
    entries = parser.parse_args().entries
    root = Path(tempfile.mkdtemp(prefix="web-memory-"))
    home = make_home(root / "home")
    port = free_port()
    site = Site(home, write_config(home, port), port)
    original = images.photo(7).resize((800, 533))
    buffer = io.BytesIO()
    original.save(buffer, "JPEG", quality=95)
    home.drop("original.jpg", buffer.getvalue())
    site.run("run", check=True)
    started = time.monotonic()
    for number, data in enumerate(copies(entries)):
        home.drop(f"copy-{number:04d}.jpg", data)
    site.run("run", check=True, timeout=1800)
    print(f"filed {entries} copies into quarantine in {time.monotonic() - started:.1f} s; "
          f"quarantine holds {len(home.files(home.quarantine))} files")
    set_password(site)
    serve(site)
    try:
        pid = site.process.pid
        time.sleep(1.0)     # let start-up settle before the idle figure
        print("idle after start:          RSS %.1f MiB (peak %.1f)" % memory(pid))
        client = site.client()
        assert client.login().status == 303
        print("after login:               RSS %.1f MiB (peak %.1f)" % memory(pid))
        pages = -(-entries // 20)
        started = time.monotonic()
        first = client.get("/quarantine")
        assert first.status == 200 and len(ids(first, "/restore")) == min(20, entries)
        for number in range(2, pages + 1):
            assert client.get(f"/quarantine?page={number}").status == 200
        elapsed = time.monotonic() - started
        print(f"all {pages} quarantine pages: {elapsed * 1000 / pages:.0f} ms per page; "
              "RSS %.1f MiB (peak %.1f)" % memory(pid))
        started = time.monotonic()
        for entry in ids(first, "/restore"):
            assert client.get(f"/preview/{entry}").status == 200
            assert client.get(f"/preview/{entry}/matched").status == 200
        elapsed = time.monotonic() - started
        print(f"40 previews of page 1: {elapsed * 1000 / 40:.0f} ms each; "
              "RSS %.1f MiB (peak %.1f)" % memory(pid))
        for number in range(1, pages + 1):
            client.get(f"/quarantine?page={number}")
        print("second pass over the pages: RSS %.1f MiB (peak %.1f)" % memory(pid))
    finally:
        stop(site)
    print(f"(home left in {root} for a look; remove it when done)")


if __name__ == "__main__":
    main()
