#!/usr/bin/env python3
"""One benchmark run: frame-ingest against the article's method, on one labelled corpus.

    python3 bench/run.py                          # 300 originals (~450 files), ~3-5 min
    python3 bench/run.py --originals 700          # ~1,050 files
    python3 bench/run.py --corpus /tmp/c1000      # an existing bench/corpus.py folder
    python3 bench/run.py --help                   # sizes of the synthetic parts, repeats

It prints one table. Every figure comes from this one invocation on this machine, so the
ratios compare like with like even when the machine is busy with other work:

* cold resweep: ``frame-ingest resweep --dry-run --json`` (the product's command, in a
  fresh process, empty store: every file signed in the process pool, then the duplicate
  search), median of ``--repeat`` runs; the baseline (bench/baseline.py, the article's
  method, single process as published) once; their ratio.
* decode floor (bench/decode_floor.py: every file opened and decoded once, JPEG at 1/8,
  on all cores), median of ``--repeat`` runs, and our cold time as a multiple of it.
* warm resweep (nothing changed) of the corpus, and of ``--warm-files`` synthetic files.
* gate lookup: ``gate.decide`` for one incoming photo (already signed: decode excluded)
  against stores of ``--gate-sizes`` synthetic rows: median of many lookups, and the time
  to load the index from the store.
* peak RSS (main process, and the largest pool worker) of the cold resweep, and of a
  resweep over ``--rss-files`` synthetic files (bench/synthetic.py says what is synthetic).
* accuracy per variant kind, hard negatives and distinct photos, for each method of ours
  (the resweep's duplicate groups) and for the baseline.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402,F401  (one BLAS thread per process, before numpy loads)
from bench import accuracy  # noqa: E402
from bench.baseline import baseline_scan  # noqa: E402
from bench.decode_floor import decode_floor_process, image_files  # noqa: E402
from bench.gate_latency import gate_latency  # noqa: E402
from bench.synthetic import link_tree  # noqa: E402

# Runs the product's CLI in a fresh interpreter and reports its own peak RSS afterwards:
# VmHWM of its memory map. (Not ru_maxrss: Linux carries the high-water mark of the
# memory map a process had before execve, here the benchmark's own, into ru_maxrss.)
CHILD = """
import json, sys, time
started = time.perf_counter()
from pipeline.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
usage = {"self": peak / 1024, "in_process": time.perf_counter() - started}
print("BENCH-RUSAGE " + json.dumps(usage), file=sys.stderr)
sys.exit(code)
"""


def write_config(work: Path, name: str, pictures: Path, method: str = "similar",
                 workers: int = 0) -> Path:
    state = work / f"state-{name}"
    config = work / f"{name}.toml"
    config.write_text(f'[library]\npictures = "{pictures}"\nquarantine = "{work}/quarantine"\n'
                      f'rejected = "{work}/rejected"\nstate_dir = "{state}"\n\n'
                      f'[dedupe]\nmethod = "{method}"\n\n[resweep]\nworkers = {workers}\n')
    return config


def product_resweep(config: Path) -> dict:
    """``frame-ingest --config C -q resweep --dry-run --json`` in a fresh process."""
    command = [sys.executable, "-c", CHILD, "--config", str(config), "-q", "resweep",
               "--dry-run", "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, cwd=ROOT)
        workers = peak_rss_of_descendants(process)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"resweep failed ({process.returncode}): {stderr[-2000:]}")
    usage = json.loads(stderr.rsplit("BENCH-RUSAGE ", 1)[1].splitlines()[0])
    return {"wall": wall, "report": json.loads(stdout), "rss_main": usage["self"],
            "rss_worker": workers, "in_process": usage["in_process"],
            # user + system CPU of the whole process tree (the forked workers included)
            "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def peak_rss_of_descendants(process: subprocess.Popen) -> float:
    """Wait for ``process`` (``wait``, so its CPU time reaches RUSAGE_CHILDREN); meanwhile sample the peak RSS (VmHWM) of its descendants (the
    pool's workers are children of the forkserver, so rusage of the child misses them)."""
    peaks: dict[int, float] = {}
    while process.poll() is None:
        for pid in descendants(process.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = max(peaks.get(pid, 0.0), int(line.split()[1]) / 1024)
        time.sleep(0.05)  # sampling interval, not a wait for a result
    process.wait()
    return max(peaks.values(), default=0.0)


def descendants(root: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def ensure_corpus(arguments) -> Path:
    if arguments.corpus:
        return Path(arguments.corpus)
    from bench.corpus import make_corpus
    folder = Path(tempfile.gettempdir()) / (f"frame-ingest-hard-corpus-{arguments.originals}"
                                            f"-seed{arguments.seed}")
    if not (folder / "labels.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        make_corpus(folder, arguments.originals, arguments.seed, all_kinds=True, hard=True)
        print(f"# corpus generated in {time.perf_counter() - started:.0f} s: {folder}")
    return folder


def median(values) -> float:
    return statistics.median(values)


def listed(values) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def measure_cold_and_warm(arguments, work: Path, corpus: Path, table: list) -> dict:
    """Cold resweep, warm resweep and decode floor, interleaved in each repeat so that
    each cold/floor ratio compares runs made under the same load from other work."""
    colds, warms, floors = [], [], []
    for repeat in range(arguments.repeat):
        floors.append(decode_floor_process(corpus))
        config = write_config(work, f"cold{repeat}", corpus)
        shutil.rmtree(work / f"state-cold{repeat}", ignore_errors=True)  # an empty store
        colds.append(product_resweep(config))
        warms.append(product_resweep(config))
    files = colds[0]["report"]["scanned"]
    table.append(("cold resweep, ours (product CLI, all cores)",
                  f"{median(run['wall'] for run in colds):.2f} s",
                  f"{files} files; runs {listed(run['wall'] for run in colds)}; "
                  f"in-process {median(run['in_process'] for run in colds):.2f} s"))
    table.append(("warm resweep, ours (nothing changed)",
                  f"{median(run['wall'] for run in warms):.2f} s",
                  f"{files} files; in-process {median(run['in_process'] for run in warms):.2f} s"))
    table.append(("peak RSS, cold resweep",
                  f"{max(run['rss_main'] for run in colds):.0f} MB main",
                  f"largest pool worker {max(run['rss_worker'] for run in colds):.0f} MB"))
    return {"cold": median(run["wall"] for run in colds),
            "cold_in_process": median(run["in_process"] for run in colds),
            "cold_runs": [run["wall"] for run in colds], "floors": floors,
            "cold_cpu": [run["cpu"] for run in colds],
            "state": work / "state-cold0", "files": files}


def measure_baseline(arguments, corpus: Path, table: list, ours: dict):
    if arguments.skip_baseline:
        return None
    result = baseline_scan(corpus)
    ratio = result.seconds / ours["cold"]
    table.append(("cold scan, baseline (article, 1 process)", f"{result.seconds:.2f} s",
                  f"{result.checked} .jpg decoded twice ({result.decode_seconds:.1f} s), "
                  f"{result.comparisons} comparisons ({result.compare_seconds:.1f} s); "
                  f"CPU {result.cpu_seconds:.1f} s"))
    table.append(("  ratio baseline / ours", f"{ratio:.1f}x",
                  f"best run {result.seconds / min(ours['cold_runs']):.1f}x; "
                  "target >= 10x at 1,000 images, >= 15x at 3,000"))
    return result


def floor_rows(ours: dict, table: list, baseline) -> None:
    runs = ours["floors"]
    floor = median(run["seconds"] for run in runs)
    ratios = [cold / run["seconds"] for cold, run in zip(ours["cold_runs"], runs)]
    table.append(("decode floor (whole process, cold pool)", f"{floor:.2f} s",
                  f"runs {listed(run['seconds'] for run in runs)}; decode CPU "
                  f"{1000 * median(run['cpu_seconds'] for run in runs) / runs[0]['files']:.2f}"
                  " ms/file"))
    table.append(("  ours cold / decode floor (wall)", f"{median(ratios):.2f}x",
                  f"median of the per-repeat ratios {listed(ratios)}; target <= 1.2x"))
    cpu_ratios = [cold / run["process_cpu"] for cold, run in zip(ours["cold_cpu"], runs)]
    table.append(("  ours cold / decode floor (CPU)", f"{median(cpu_ratios):.2f}x",
                  f"process-tree CPU {median(ours['cold_cpu']):.1f} s against "
                  f"{median(run['process_cpu'] for run in runs):.1f} s; per repeat "
                  f"{listed(cpu_ratios)} (steadier than wall time on a shared machine)"))
    if baseline is not None:
        table.append(("  baseline / decode floor", f"{baseline.seconds / floor:.1f}x",
                      "the ratio a product with zero cost beyond the decode could reach"))


def measure_synthetic_resweeps(arguments, work: Path, corpus: Path, table: list) -> None:
    photos = sorted(corpus.rglob("*.jpg"))[:50]  # the corpus may hold sub-folders
    for count, label in ((arguments.warm_files, "warm"), (arguments.rss_files, "rss")):
        if not count:
            continue
        pictures = work / f"tree-{count}"
        config = write_config(work, f"{label}-{count}", pictures)
        started = time.perf_counter()
        link_tree(pictures, work / f"state-{label}-{count}" / "store.sqlite3", count, photos)
        setup = time.perf_counter() - started
        runs = [product_resweep(config) for _ in range(arguments.repeat if label == "warm"
                                                         else 1)]
        table.append((f"warm resweep, {count:,} files (synthetic rows)",
                      f"{median(run['wall'] for run in runs):.2f} s",
                      f"in-process {median(run['in_process'] for run in runs):.2f} s; "
                      f"peak RSS {max(run['rss_main'] for run in runs):.0f} MB; "
                      f"groups {runs[0]['report']['groups']}; tree+rows built in {setup:.0f} s"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", help="an existing bench/corpus.py folder")
    parser.add_argument("--originals", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gate-sizes", default="1000,10000,100000")
    parser.add_argument("--warm-files", type=int, default=10_000)
    parser.add_argument("--rss-files", type=int, default=100_000)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--work", help="scratch folder (default: a new temporary one)")
    arguments = parser.parse_args(argv)
    corpus = ensure_corpus(arguments)
    work = Path(arguments.work or tempfile.mkdtemp(prefix="frame-ingest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    # an installed frame-ingest has its modules byte-compiled (pip does it); a checkout
    # run with PYTHONDONTWRITEBYTECODE=1 would compile them again in every process
    compileall.compile_dir(ROOT / "pipeline", quiet=1)
    load = os.getloadavg()
    print(f"# machine: {os.cpu_count()} cores, load average {load[0]:.1f} at start; "
          f"corpus {corpus} ({len(image_files(corpus))} images); scratch {work}")
    table: list[tuple[str, str, str]] = []
    ours = measure_cold_and_warm(arguments, work, corpus, table)
    baseline = measure_baseline(arguments, corpus, table, ours)
    floor_rows(ours, table, baseline)
    measure_synthetic_resweeps(arguments, work, corpus, table)
    for size in [int(size) for size in arguments.gate_sizes.split(",") if size]:
        table.append(gate_latency(work, corpus, size))
    print_table(table)
    if not arguments.skip_accuracy:
        print()
        print(accuracy.report(work, corpus, ours["state"], baseline, write_config,
                              product_resweep))
    print(f"\n# load average at the end {os.getloadavg()[0]:.1f}")
    return 0


def print_table(table) -> None:
    width = max(len(row[0]) for row in table)
    value_width = max(len(row[1]) for row in table)
    print(f"{'measure':<{width}}  {'value':>{value_width}}  detail")
    for name, value, detail in table:
        print(f"{name:<{width}}  {value:>{value_width}}  {detail}")


if __name__ == "__main__":
    sys.exit(main())
