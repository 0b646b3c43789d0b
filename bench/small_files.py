"""A big drop of small files: what the durability work costs per file (issue 11, item 13).

Drops N distinct small PNGs (about 16 KB each, so the cost is fsyncs, not decoding) into
the drop folder of a fresh HOME on a real disk (not tmpfs: there fsync is free), and times
``frame-ingest run`` end to end, once with the code of ``--before`` (a git revision,
exported with ``git archive``: by default f34b370, main before the gate's plans were
batched) and once with this tree, each in its own fresh HOME, in the same invocation.
Prints seconds per 1,000 files for both and the ratio, and (when strace is installed and
``--no-strace`` is not given) the fsync-like system calls per file.

    python3 bench/small_files.py --files 10000 --no-strace   # the figure in the docs
    python3 bench/small_files.py --files 1000                # with the fsync counts
    python3 bench/small_files.py --before HEAD~3             # against another revision
    python3 bench/small_files.py --phases                    # fetch and gate timed apart
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


def timed(command: str, home: Path, tree: Path,
          strace: bool) -> tuple[float, tuple[int, float] | None]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("FRAME_INGEST", "XDG_", "JOURNAL_STREAM"))}
    env.update(HOME=str(home), PYTHONPATH=str(tree))
    argv = [sys.executable, "-m", "pipeline", "-q", command]
    summary = home / f"strace-{command}.txt"
    if strace:
        argv = ["strace", "-f", "-c", "-w", "-e", f"trace={SYNC_CALLS}", "-o",
                str(summary)] + argv
    started = time.monotonic()
    result = subprocess.run(argv, env=env, cwd=home, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{command} exited {result.returncode}:\n{result.stderr}")
    calls = None
    if strace:
        totals = re.findall(r"^\s*[\d.]+\s+([\d.]+)\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$",
                            summary.read_text(), re.MULTILINE)
        calls = (sum(int(count) for _, count, name in totals if name != "total"),
                 sum(float(spent) for spent, _, name in totals if name != "total"))
    return seconds, calls


def export_revision(revision: str, parent: Path) -> Path:
    """The tree of ``revision`` in a temporary folder (no checkout, no branch touched)."""
    tree = Path(tempfile.mkdtemp(prefix="small-files-tree-", dir=parent))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "pipeline"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def measure(label: str, tree: Path, arguments, strace: bool) -> float:
    """Seconds of one end-to-end ``run`` (or fetch + gate) over a fresh HOME."""
    home = make_home(arguments.dir, arguments.files)
    try:
        total = 0.0
        for command in (("fetch", "gate") if arguments.phases else ("run",)):
            seconds, calls = timed(command, home, tree, strace)
            total += seconds
            per_file = f", {calls[0] / arguments.files:.2f} fsync-like calls per file " \
                f"taking {calls[1]:.1f} s in all" if calls is not None else ""
            print(f"{label:<7} {command}: {seconds:.1f} s, "
                  f"{seconds / arguments.files * 1000:.1f} s per 1,000 files{per_file}")
        filed = sum(1 for _ in (home / "Pictures").iterdir())
        left = sum(1 for _ in (home / "PhotoInbox").iterdir())
        if filed != arguments.files or left:
            raise SystemExit(f"{label}: filed {filed} of {arguments.files}, {left} left")
        return total
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--before", default="f34b370",
                        help="git revision timed as 'before' ('' to skip it)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the 'after' source tree")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"),
                        help="where the HOMEs go (a real disk)")
    parser.add_argument("--phases", action="store_true",
                        help="time fetch and gate separately instead of one run")
    parser.add_argument("--no-strace", action="store_true",
                        help="time only (strace slows every call a little)")
    arguments = parser.parse_args()
    strace = shutil.which("strace") is not None and not arguments.no_strace
    print(f"{arguments.files} files of about "
          f"{len(small_png(np.random.default_rng(0))) // 1024 + 1} KB each, HOMEs in "
          f"{arguments.dir}{', under strace' if strace else ''}")
    before_tree = export_revision(arguments.before, arguments.dir) if arguments.before \
        else None
    try:
        before = measure("before", before_tree, arguments, strace) if before_tree else None
        after = measure("after", arguments.tree, arguments, strace)
    finally:
        if before_tree:
            shutil.rmtree(before_tree, ignore_errors=True)
    per_thousand = lambda seconds: seconds / arguments.files * 1000  # noqa: E731
    if before is not None:
        print(f"end to end: before {per_thousand(before):.1f} s per 1,000 files "
              f"({arguments.before}), after {per_thousand(after):.1f} s per 1,000 files; "
              f"after/before = {after / before:.2f} ({before / after:.1f}x faster)")


if __name__ == "__main__":
    main()
