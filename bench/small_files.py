"""A big drop of small files: what the durability work costs per file (issue 11, item 13).

Drops N distinct small PNGs (about 2 KB each, so the cost is fsyncs, not decoding) into
the drop folder of a fresh HOME on a real disk (not tmpfs: there fsync is free), then
times ``frame-ingest fetch`` and ``frame-ingest gate`` separately, and counts the
fsync-like system calls of each phase with strace when it is installed.

    python3 bench/small_files.py                      # this tree, 2,000 files
    python3 bench/small_files.py --files 10000
    python3 bench/small_files.py --tree /tmp/old-tree # the same figures for another tree
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SYNC_CALLS = "fsync,fdatasync,syncfs,sync"


def small_png(rng: np.random.Generator) -> bytes:
    pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").resize((96, 72), Image.Resampling.BILINEAR) \
        .save(buffer, "PNG")
    return buffer.getvalue()


def make_home(parent: Path, count: int) -> Path:
    home = Path(tempfile.mkdtemp(prefix="small-files-", dir=parent))
    inbox = home / "PhotoInbox"
    inbox.mkdir()
    rng = np.random.default_rng(11)
    stamp = time.time() - 600
    for number in range(count):
        path = inbox / f"IMG_{number:05d}.png"
        path.write_bytes(small_png(rng))
        os.utime(path, (stamp, stamp))
    os.sync()
    return home


def timed(command: str, home: Path, tree: Path, strace: bool) -> tuple[float, int | None]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("FRAME_INGEST", "XDG_", "JOURNAL_STREAM"))}
    env.update(HOME=str(home), PYTHONPATH=str(tree))
    argv = [sys.executable, "-m", "pipeline", "-q", command]
    summary = home / f"strace-{command}.txt"
    if strace:
        argv = ["strace", "-f", "-c", "-e", f"trace={SYNC_CALLS}", "-o", str(summary)] + argv
    started = time.monotonic()
    result = subprocess.run(argv, env=env, cwd=home, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{command} exited {result.returncode}:\n{result.stderr}")
    calls = None
    if strace:
        totals = re.findall(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$",
                            summary.read_text(), re.MULTILINE)
        calls = sum(int(count) for count, name in totals if name != "total")
    return seconds, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--tree", type=Path, default=ROOT, help="frame-ingest source tree")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"),
                        help="where the HOME goes (a real disk)")
    parser.add_argument("--no-strace", action="store_true",
                        help="time only (strace slows every call a little)")
    arguments = parser.parse_args()
    strace = shutil.which("strace") is not None and not arguments.no_strace
    home = make_home(arguments.dir, arguments.files)
    try:
        print(f"tree {arguments.tree}, {arguments.files} files of about "
              f"{small_png(np.random.default_rng(0)).__len__() // 1024 + 1} KB, HOME {home}")
        for command in ("fetch", "gate"):
            seconds, calls = timed(command, home, arguments.tree, strace)
            per_file = f", {calls / arguments.files:.1f} fsync-like calls per file" \
                if calls is not None else ""
            print(f"{command}: {seconds:.1f} s, {seconds / arguments.files * 1000:.2f} ms per "
                  f"file{per_file}")
        filed = sum(1 for _ in (home / "Pictures").iterdir())
        left = sum(1 for _ in (home / "PhotoInbox").iterdir())
        print(f"filed in Pictures: {filed}, left in the inbox: {left}")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
