"""What a resweep costs: prints time and peak memory for generated libraries.

    python3 bench/resweep_bench.py photos 1000       # real JPEGs (tests/images.py photos)
    python3 bench/resweep_bench.py existing DIR      # again, on DIR/Pictures from a photos run
    python3 bench/resweep_bench.py signatures 100000 # synthetic store rows: the search alone

``photos N``: N photo-like 1200x800 JPEGs, 5% of them copies of others (byte copies,
half-size, rotated), then a cold resweep (everything signed) and a warm one (nothing
changed). ``signatures N``: N store rows with random thumbnails (hashes made from them)
and 2% planted near copies, then only the duplicate search (``find_groups``).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import load_config, parse_config  # noqa: E402
from pipeline.duplicates import find_groups  # noqa: E402
from pipeline.index import SignatureIndex  # noqa: E402
from pipeline.resweep import resweep  # noqa: E402
from pipeline.signatures import Signature, phash_many  # noqa: E402
from pipeline.store import Store  # noqa: E402
from tests import images  # noqa: E402


def peak_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(own, 1), round(children, 1)


def make_photo(job: tuple[int, str]) -> None:
    seed, folder = job
    picture = images.photo(seed)
    data = images.jpeg(picture)
    Path(folder, f"photo-{seed:05d}.jpg").write_bytes(data)
    if seed % 20 == 0:  # 5%: a copy of the kind a library collects
        kind = ("byte_copy", "downscaled_50", "rotated_90")[seed // 20 % 3]
        copy = data if kind == "byte_copy" else images.variants(picture, data)[kind]
        Path(folder, f"copy-{seed:05d}.jpg").write_bytes(copy)


def bench_photos(count: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="resweep-bench-"))
    pictures = work / "Pictures"
    pictures.mkdir()
    originals = round(count / 1.05)
    started = time.monotonic()
    with Pool() as pool:
        pool.map(make_photo, [(seed, str(pictures)) for seed in range(originals)], chunksize=8)
    files = len(list(pictures.iterdir()))
    print(f"generated {files} files in {time.monotonic() - started:.0f} s ({work})")
    measure_existing(work)


def measure_existing(work: Path) -> None:
    """Cold then warm resweep of work/Pictures, each in a fresh process so that the peak
    memory figures are the resweep's own (main process, largest signing worker)."""
    config = work / "config.toml"
    config.write_text(f'[library]\npictures = "{work}/Pictures"\nquarantine = "{work}/quarantine"'
                      f'\nrejected = "{work}/rejected"\nstate_dir = "{work}/state"\n')
    for label in ("cold", "warm"):
        result = subprocess.run([sys.executable, __file__, "sweep", str(config)],
                                capture_output=True, text=True, check=True)
        print(f"{label}: {result.stdout.strip()}")


def sweep(config_path: str) -> None:
    config = load_config(config_path)
    workers = {"peak": 0}
    done = threading.Event()
    watcher = threading.Thread(target=watch_workers, args=(workers, done), daemon=True)
    watcher.start()
    with Store(config.database) as store:
        report = resweep(config, store).to_dict()
    done.set()
    watcher.join()
    print(f"{report['seconds']} s, scanned={report['scanned']} signed={report['signed']} "
          f"groups={report['groups']} quarantined={report['quarantined']}, peak RSS MB: "
          f"main {peak_mb()[0]}, largest signing worker {workers['peak'] / 1024:.1f}")


def watch_workers(workers: dict, done: threading.Event) -> None:
    """Peak RSS (VmHWM, kB) of this process's descendants, sampled while they live."""
    while not done.wait(0.2):
        pending = [os.getpid()]
        while pending:
            parent = pending.pop()
            try:
                children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
            except OSError:
                continue
            for child in children:
                pending.append(int(child))
                try:
                    status = Path(f"/proc/{child}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        workers["peak"] = max(workers["peak"], int(line.split()[1]))


def bench_signatures(count: int) -> None:
    rng = np.random.default_rng(1)
    work = Path(tempfile.mkdtemp(prefix="resweep-bench-"))
    thumbs = rng.integers(0, 256, (count, 32, 32), dtype=np.uint8)
    planted = count // 50
    thumbs[count - planted:] = np.clip(thumbs[:planted].astype(np.int16) +
                                       rng.integers(-3, 4, (planted, 32, 32)), 0, 255)
    hashes = phash_many(thumbs)
    with Store(work / "store.sqlite3") as store, store.transaction() as tx:
        for number in range(count):
            mean = tuple(float(value) for value in [thumbs[number].mean()] * 3)
            signature = Signature(f"{number:064x}", 1000 + number, "JPEG", 1200, 800, mean,
                                  mean, int(hashes[number]), thumbs[number].tobytes())
            store.put_file(tx, f"photo-{number}.jpg", 1000 + number, number, signature)
    print(f"store of {count} synthetic rows written; peak RSS MB: {peak_mb()[0]}")
    settings = parse_config({}).dedupe
    del thumbs, hashes
    with Store(work / "store.sqlite3") as store:
        tracemalloc.start()
        started = time.monotonic()
        library = SignatureIndex.from_store(store)
        loaded = time.monotonic() - started
        groups = find_groups(store, library, settings)
        seconds = time.monotonic() - started
        traced = tracemalloc.get_traced_memory()[1] / 1048576
    print(f"find_groups over {count}: {seconds:.1f} s (load {loaded:.1f} s), {len(groups)} "
          f"groups ({planted} planted), peak Python+numpy allocations {traced:.0f} MB")


if __name__ == "__main__":
    kind, argument = sys.argv[1], sys.argv[2]
    if kind == "sweep":
        sweep(argument)
        sys.exit(0)
    print(f"machine: {os.cpu_count()} cores; {' '.join(os.uname()[2:5:2])}")
    if kind == "existing":  # a folder a previous run generated (copies moved back first)
        measure_existing(Path(argument))
    else:
        (bench_photos if kind == "photos" else bench_signatures)(int(argument))
