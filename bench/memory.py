"""Memory on a 1 GB Pi: the peak of every frame-ingest process during `run` and `resweep`.

- ``run`` on 50 phone-size photos in ~/PhotoInbox: 4000x3000 JPEGs of about 4 MB, a
  quarter of them stored sideways with EXIF Orientation 6 (as phones do);
- ``resweep`` (cold: everything signed) of a 2,000-photo Pictures folder: those 50 phone
  photos filed by the run plus 1,950 smaller ones (1600x1200, to keep the set's making
  short), with the default workers (one per core) and, for a Pi's four cores, with 4.

For each process (the command, the multiprocessing forkserver and resource tracker, each
signing worker) it
prints the peak RSS (VmHWM) and the peak PSS (proportional set size: pages shared between
the forked workers counted once in all, the fairer sum), sampled every 50 ms from /proc,
and the sums. Asserts nothing.

    python3 bench/memory.py [--photos 50] [--library 2000]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import images  # noqa: E402

PHONE = (4000, 3000)
SMALL = (1600, 1200)


def phone_photo(seed: int) -> bytes:
    """A ~4 MB photo-like 4000x3000 JPEG; every fourth one sideways (Orientation 6)."""
    base = images.painting(seed, (PHONE[0] // 4, PHONE[1] // 4), octaves=(3, 6, 12, 24, 48))
    picture = base.resize(PHONE, Image.Resampling.BICUBIC)
    grain = np.random.default_rng(seed).integers(-16, 16, (PHONE[1], PHONE[0], 3))
    pixels = np.clip(np.asarray(picture, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels)
    exif = Image.Exif()
    if seed % 4 == 0:
        picture = picture.transpose(Image.Transpose.ROTATE_90)   # stored as the sensor saw it
        exif[0x0112] = 6
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=92, exif=exif.tobytes())
    return buffer.getvalue()


def small_photo(seed: int) -> bytes:
    buffer = io.BytesIO()
    images.painting(seed, SMALL, octaves=(3, 6, 12, 24, 48)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def write(job: tuple[str, int, str]) -> int:
    kind, seed, folder = job
    data = phone_photo(seed) if kind == "phone" else small_photo(seed)
    Path(folder, f"{kind}-{seed:05d}.jpg").write_bytes(data)
    return len(data)


def descendants(root: int) -> dict[int, int]:
    """pid -> parent pid of every process below ``root``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.update((child, parent) for child in children)
        frontier += children
    return found


def sample(pid: int) -> tuple[str, float, float] | None:
    """(name, VmHWM MiB, Pss MiB) of one process, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    hwm = next(int(line.split()[1]) for line in status.splitlines()
               if line.startswith("VmHWM:")) / 1024
    pss = next((int(line.split()[1]) for line in rollup.splitlines()
                if line.startswith("Pss:")), 0) / 1024
    return command, hwm, pss


def measure(command: list[str], env: dict) -> tuple[float, dict[int, list]]:
    """Run ``command``; seconds and, per process, [role, peak RSS, peak PSS]."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    peaks: dict[int, list] = {}
    while process.poll() is None:
        below = descendants(process.pid)
        for pid in [process.pid, *below]:
            found = sample(pid)
            if found is None:
                continue
            name, hwm, pss = found
            # the signing workers are forked by the forkserver and carry its command line
            role = ("frame-ingest" if pid == process.pid else
                    "resource tracker" if "resource_tracker" in name else
                    "forkserver" if below.get(pid) == process.pid else "worker")
            entry = peaks.setdefault(pid, [role, 0.0, 0.0])
            entry[1], entry[2] = max(entry[1], hwm), max(entry[2], pss)
        time.sleep(0.05)  # sampling interval, not a wait for a result
    stderr = process.stderr.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{stderr}")
    print("   ", stderr.strip().splitlines()[-1], flush=True)
    return time.perf_counter() - started, peaks


def report(title: str, seconds: float, peaks: dict[int, list]) -> None:
    print(f"{title}: {seconds:.1f} s")
    for role in ("frame-ingest", "forkserver", "resource tracker", "worker"):
        rows = [entry for entry in peaks.values() if entry[0] == role]
        for number, (_, rss, pss) in enumerate(rows, 1):
            label = role if len(rows) == 1 else f"{role} {number}"
            print(f"    {label:16} peak RSS {rss:6.1f} MiB   peak PSS {pss:6.1f} MiB")
    print(f"    {'sum':16} peak RSS {sum(e[1] for e in peaks.values()):6.1f} MiB   "
          f"peak PSS {sum(e[2] for e in peaks.values()):6.1f} MiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--library", type=int, default=2000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as directory:
        home = Path(directory)
        inbox, pictures = home / "PhotoInbox", home / "Pictures"
        inbox.mkdir()
        pictures.mkdir()
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("FRAME_INGEST", "XDG_"))}
        env.update(HOME=str(home), PYTHONPATH=str(ROOT))
        with Pool() as pool:
            sizes = pool.map(write, [("phone", seed, str(inbox))
                                     for seed in range(options.photos)])
            pool.map(write, [("small", 10_000 + seed, str(pictures))
                             for seed in range(options.library - options.photos)], chunksize=8)
        old = time.time() - 600   # old enough for the drop folder to take them
        for path in inbox.iterdir():
            os.utime(path, (old, old))
        print(f"{options.photos} phone photos {PHONE[0]}x{PHONE[1]}, "
              f"{sum(sizes) / len(sizes) / 1e6:.1f} MB on average, "
              f"{sum(1 for seed in range(options.photos) if seed % 4 == 0)} with Orientation 6; "
              f"{options.library - options.photos} more photos {SMALL[0]}x{SMALL[1]} in "
              f"Pictures; {os.cpu_count()} cores", flush=True)
        cli = [sys.executable, "-m", "pipeline"]
        report("run (phone photos from the drop folder)", *measure(cli + ["run"], env))
        config = home / "config.toml"
        for workers in (0, 4):
            state = home / f"state-{workers}"
            config.write_text(f'[library]\nstate_dir = "{state}"\n\n'
                              f'[resweep]\nworkers = {workers}\n')
            label = ("default workers (one per core)" if workers == 0
                     else f"workers = {workers} (a Pi's default)")
            report(f"resweep of {options.library} photos, cold, {label}",
                   *measure(cli + ["--config", str(config), "resweep"], env))


if __name__ == "__main__":
    main()
