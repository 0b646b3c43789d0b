"""Crash-safety harness: mixed inputs, SIGKILL at seeded random moments, then the invariant.

A *trial* is one throwaway HOME: inputs are placed at their sources by pluggable
``Scenario`` objects (the drop folder, the emulated Dropbox, a photo already in Pictures;
IMAP joins as one more scenario), a frame-ingest command is started as a subprocess and
killed with SIGKILL after a random delay drawn from the measured length of an unkilled run
(the randomness is the point of the test, so that delay is no synchronisation sleep), the
command may be killed again during its recovery, and finally ``run`` is repeated to
completion. Then ``check_invariant`` compares what was sent with what is on disk and in the
store. Every problem is returned as one line naming the trial's seed, so a failure can be
replayed alone with ``FRAME_INGEST_KILL_SEED``.

Input kinds are the scenarios of ``tests/support/scenarios.py``. Adding a command: a
function ``(trial) -> None`` that prepares what the command needs before the killed run
(``gate`` fetches first), registered in ``COMMANDS``.

Random moments find what nobody thought of; ``kill_at_every_step`` is the exhaustive,
deterministic counterpart for one prepared situation: the command runs under ``strace``,
which sends SIGKILL as the n-th call of one file-changing syscall begins (so before that
call takes effect), for every syscall in ``FILE_CHANGES`` and every n the unkilled run
reached. No hook in the product is needed, and the same n stops the same step every time.
"""

from __future__ import annotations

import collections
import hashlib
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Callable

from pipeline.cli import COMMANDS as CLI_COMMANDS
from tests.support.scenarios import Corpus, Input, choose_inputs

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".heic", ".tif"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- trials


@dataclass
class Trial:
    """One seeded trial in one temporary HOME."""

    seed: int
    home: object
    scenarios: list
    command: str
    sent: list[Input] = field(default_factory=list)
    kills: int = 0
    interrupted: list[str] = field(default_factory=list)   # what each kill left in flight
    before: dict = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.home.path / "frame-ingest.toml"

    def env(self) -> dict:
        merged = dict(self.home.env)
        for scenario in self.scenarios:
            merged.update(scenario.env())
        return merged

    def argv(self, *arguments: str) -> list[str]:
        return [sys.executable, "-m", "pipeline", "--config", str(self.config_path), *arguments]

    def prepare(self, corpus: Corpus, rng: random.Random) -> None:
        inputs = choose_inputs(corpus, rng)
        by_scenario: dict[int, list[Input]] = collections.defaultdict(list)
        for item in inputs:
            able = [n for n, scenario in enumerate(self.scenarios) if scenario.accepts(item)]
            by_scenario[rng.choice(able)].append(item)
        for number, scenario in enumerate(self.scenarios):
            scenario.place(self.home, by_scenario[number])
            self.sent.extend(by_scenario[number])
        self.config_path.write_text("\n".join(s.config() for s in self.scenarios))
        self.config_path.chmod(0o600)
        self.before = snapshot(self.home.path)

    def clone(self, path: Path) -> Trial:
        """A copy of this trial's HOME (files, store, mtimes) at ``path``, with what was
        sent so far; its snapshot for the write check is taken after the copy. Scenarios
        whose config holds paths inside the HOME (IMAP's password file) do not clone."""
        shutil.copytree(self.home.path, path, symlinks=True)
        home = type(self.home)(path, dict(self.home.env, HOME=str(path)))
        copy = Trial(self.seed, home, self.scenarios, self.command, list(self.sent))
        copy.before = snapshot(path)
        return copy

    def run(self, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*arguments), env=self.env(), cwd=self.home.path,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def run_and_kill(self, command: str, delay: float, when: str = "") -> float:
        """Start ``command`` and SIGKILL it ``delay`` seconds after the moment ``when``
        (see ``MOMENTS``; "" = the start) unless it ended first; return how long it ran.
        What each kill left in flight is noted in ``interrupted``."""
        started = time.monotonic()
        filed_before = count_filed(self.home)
        child = subprocess.Popen(self.argv(command), env=self.env(), cwd=self.home.path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if when:
                wait_for_moment(child, MOMENTS[when], self.home, filed_before)
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
            self.kills += 1
            self.interrupted.append(in_flight(self.home))
        return time.monotonic() - started


def count_filed(home) -> tuple[int, ...]:
    """Files in Pictures, quarantine and rejected (a move shows as one of them growing)."""
    return tuple(len(files_under(folder)) for folder in (home.pictures, home.quarantine,
                                                          home.rejected))


def _staging_busy(home, filed_before: tuple[int, ...]) -> bool:
    staging = home.state_dir / "staging"
    return staging.exists() and any(staging.iterdir())


def _first_filed(home, filed_before: tuple[int, ...]) -> bool:
    return any(now > before for now, before in zip(count_filed(home), filed_before))


# Moments a kill can be aimed at, found by polling the HOME while the command runs.
MOMENTS = {"staging": _staging_busy, "filing": _first_filed}


def wait_for_moment(child: subprocess.Popen, reached, home, filed_before: tuple[int, ...],
                    deadline_seconds: float = 60) -> None:
    """Poll until ``reached(home, filed_before)`` or the child ends (then return at once)."""
    deadline = time.monotonic() + deadline_seconds
    while not reached(home, filed_before):
        if time.monotonic() > deadline:
            raise AssertionError("the awaited moment never came")
        try:
            child.wait(timeout=0.002)
            return
        except subprocess.TimeoutExpired:
            continue


def in_flight(home) -> str:
    """A word on what a kill interrupted: staging and journal contents right after it."""
    staging = home.state_dir / "staging"
    staged = len(list(staging.iterdir())) if staging.exists() else 0
    journal = 0
    database = home.state_dir / "store.sqlite3"
    if database.exists():
        try:
            with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
                journal = connection.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        except sqlite3.Error:
            journal = -1
    return f"staged={staged} journal={journal}"


def prepare_gate(trial: Trial) -> None:
    """``gate`` is killed with everything fetched already."""
    result = trial.run("fetch")
    assert result.returncode == 0, result.stderr


def prepare_resweep(trial: Trial) -> None:
    """``resweep`` is killed over a library that received copies by another path (a USB
    stick, a share): every promoted picture gets a byte copy straight into Pictures."""
    result = trial.run("run")
    assert result.returncode == 0, result.stderr
    for number, path in enumerate(files_under(trial.home.pictures)):
        data = path.read_bytes()
        copy = path.with_name(f"usb {number}{path.suffix}")
        copy.write_bytes(data)
        trial.sent.append(Input(copy.name, data, "copy"))
    trial.before = snapshot(trial.home.path)


COMMANDS: dict[str, Callable[[Trial], None]] = {"run": lambda trial: None, "gate": prepare_gate}
# What brings a trial to its end state after the kills.
FINISH: dict[str, list[str]] = {"run": ["run"], "gate": ["run"]}
if "resweep" in CLI_COMMANDS:       # the nightly pass, once it exists in this tree
    COMMANDS["resweep"] = prepare_resweep
    FINISH["resweep"] = ["run", "resweep"]


# ----------------------------------------------------------------------------- every step

STRACE = shutil.which("strace")
# The calls that change what a later run finds: names appearing and going (link, rename,
# unlink: every move, every staged item, SQLite's -wal and -shm files) and the durability
# barriers that end each step (fsync, fdatasync: a staged file complete, a folder entry
# made durable, every SQLite commit). Killing as each begins reaches every state between
# two of them. Left out: write/pwrite (bytes into temporary names or SQLite's WAL, seen by
# nobody until the next rename, link or commit, and many), mkdir (an empty folder; the
# next barrier follows at once), and openat with O_CREAT, which strace cannot tell from
# the read-only opens (every import) and whose empty file the next barrier covers.
FILE_CHANGES = ("link", "linkat", "rename", "renameat", "renameat2", "unlink", "unlinkat",
                "fsync", "fdatasync")
_TRACED_CALL = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\(")


def _traced(trial: Trial, arguments: tuple[str, ...], *strace_options: str) \
        -> subprocess.CompletedProcess:
    """Run frame-ingest under ``strace -f`` (byte-code writing off: Python's own renames of
    .pyc files would count as steps and differ from run to run)."""
    command = [STRACE, "-f", "-qq", "-e", "signal=none", *strace_options,
               *trial.argv(*arguments)]
    return subprocess.run(command, env=dict(trial.env(), PYTHONDONTWRITEBYTECODE="1"),
                          cwd=trial.home.path, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def steps_of(trial: Trial, *arguments: str) -> list[tuple[str, int]]:
    """Run the command once unkilled; return its kill points: (syscall, n) for the n-th
    call of each syscall of ``FILE_CHANGES`` it made."""
    log = trial.home.path.parent / "strace.log"
    result = _traced(trial, arguments, "-e", "trace=" + ",".join(FILE_CHANGES), "-o",
                     str(log))
    assert result.returncode == 0, result.stderr
    calls = collections.Counter(match.group(1) for line in log.read_text().splitlines()
                                if (match := _TRACED_CALL.match(line)))
    log.unlink()
    return [(name, number) for name in FILE_CHANGES for number in range(1, calls[name] + 1)]


def run_killed_at(trial: Trial, step: tuple[str, int], *arguments: str) -> bool:
    """Run the command and SIGKILL it as call ``step`` begins; True if the kill landed."""
    name, number = step
    result = _traced(trial, arguments, "-e", f"trace={name}", "-o", os.devnull, "-e",
                     f"inject={name}:signal=SIGKILL:when={number}")
    killed = result.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)
    if killed:
        trial.kills += 1
        trial.interrupted.append(f"{name}#{number} " + in_flight(trial.home))
    return killed


def outcome(home) -> set[tuple[str, str, str]]:
    """(folder, path, SHA-256) of every file in Pictures, quarantine and rejected."""
    return {(folder.name, path.relative_to(folder).as_posix(), sha(path.read_bytes()))
            for folder in (home.pictures, home.quarantine, home.rejected)
            for path in files_under(folder)}


def kill_at_every_step(template: Trial, arguments: tuple[str, ...], root: Path,
                       finish: Callable[[Trial, int], list[str]], parallel: int = 2) \
        -> tuple[list[tuple[str, int]], list[str]]:
    """Kill ``arguments`` at each of its steps, each time in a fresh copy of ``template``;
    then ``finish(trial, position)`` (the reruns, returning problems of its own; position
    is the step's index, -1 for the unkilled copy, so that reruns may vary by step), the
    invariant, and the end state must equal that of a copy that was never killed. Returns
    the steps and every problem found, one line each naming the step."""
    reference = template.clone(root / "unkilled" / "home")
    steps = steps_of(reference, *arguments)
    problems = [f"unkilled: {problem}" for problem in finish(reference, -1)]
    problems += check_invariant(reference)
    expected = outcome(reference.home)

    def one(position: int) -> list[str]:
        step = steps[position]
        trial = template.clone(root / f"{step[0]}-{step[1]}" / "home")
        if not run_killed_at(trial, step, *arguments):
            return [f"{step}: the run ended before this step: steps are not repeatable"]
        found = finish(trial, position) + check_invariant(trial)
        if outcome(trial.home) != expected:
            found.append(f"end state {sorted(outcome(trial.home) ^ expected)} differs from "
                         f"the unkilled run's")
        shutil.rmtree(trial.home.path.parent, ignore_errors=True)
        return [f"killed at {step[0]} #{step[1]} ({trial.interrupted[-1]}): {problem}"
                for problem in found]

    with ThreadPoolExecutor(parallel) as pool:
        for found in pool.map(one, range(len(steps))):
            problems += found
    return steps, problems


# ----------------------------------------------------------------------------- the invariant


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime_ns) of every file under ``root``."""
    found = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            with_status = path.lstat()
            found[path.relative_to(root).as_posix()] = (with_status.st_size,
                                                        with_status.st_mtime_ns)
    return found


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) \
        if folder.exists() else []


def check_invariant(trial: Trial) -> list[str]:
    """Every problem found, one line each (empty: the trial passed)."""
    home = trial.home
    problems: list[str] = []
    roots = {"pictures": home.pictures, "quarantine": home.quarantine,
             "rejected": home.rejected}
    found = {folder: files_under(root) for folder, root in roots.items()}
    problems += _check_bytes(trial, found)
    problems += _check_store(home, roots, found)
    problems += _check_writes(trial, roots)
    return [f"seed {trial.seed} ({trial.command}, {trial.kills} kill(s), "
            f"{'/'.join(s.name for s in trial.scenarios)}): {problem}" for problem in problems]


def _check_bytes(trial: Trial, found: dict[str, list[Path]]) -> list[str]:
    problems = []
    hidden = [path for paths in found.values() for path in paths if path.name.startswith(".")]
    if hidden:
        problems.append(f"leftover temporary files: {[str(p) for p in hidden]}")
    arrived = collections.Counter(sha(path.read_bytes()) for paths in found.values()
                                  for path in paths if not path.name.startswith("."))
    expected = collections.Counter(sha(item.data) for item in trial.sent)
    for scenario in trial.scenarios:
        expected.subtract(collections.Counter(sha(data) for data in scenario.left_at_source()))
    if arrived != +expected:
        names = {sha(item.data): item.name for item in trial.sent}
        missing = {names.get(key, key): count for key, count in (expected - arrived).items()}
        extra = {names.get(key, key): count for key, count in (arrived - expected).items()}
        problems.append(f"files on disk differ from what was sent: missing {missing}, "
                        f"extra {extra}")
    in_pictures = collections.Counter(sha(path.read_bytes()) for path in found["pictures"])
    twice = [key for key, count in in_pictures.items() if count > 1]
    if twice:
        problems.append(f"{len(twice)} picture(s) in Pictures more than once")
    return problems


def _check_store(home, roots: dict[str, Path], found: dict[str, list[Path]]) -> list[str]:
    problems = []
    staging = home.state_dir / "staging"
    if staging.exists() and any(staging.iterdir()):
        problems.append(f"staging not empty: {sorted(p.name for p in staging.iterdir())}")
    # closed here, not by the garbage collector: a connection closed at some later moment
    # deletes the -wal and -shm files under a snapshot being taken (a sqlite3 connection
    # sits in a reference cycle, so only the cyclic collector frees it)
    with closing(sqlite3.connect(home.state_dir / "store.sqlite3")) as connection:
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            problems.append(f"integrity_check: {integrity}")
        if connection.execute("SELECT COUNT(*) FROM journal").fetchone()[0]:
            problems.append("the move journal is not empty")
        rows = {path: size for path, size in
                connection.execute("SELECT path, size FROM files WHERE error IS NULL")}
        decided = collections.Counter(
            (folder, path) for folder, path in connection.execute(
                "SELECT folder, path FROM decisions WHERE folder != 'pictures' "
                "AND restored_at IS NULL"))
    on_disk = {path.relative_to(roots["pictures"]).as_posix(): path.stat().st_size
               for path in found["pictures"]
               if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")}
    if rows != on_disk:
        problems.append(f"files table {sorted(rows.items())} != Pictures "
                        f"{sorted(on_disk.items())}")
    for (folder, path), count in decided.items():
        if count > 1:
            problems.append(f"{count} decisions point at {folder}/{path}")
        if not (roots[folder] / path).is_file():
            problems.append(f"decision points at missing {folder}/{path}")
    for folder in ("quarantine", "rejected"):
        for path in found[folder]:
            if (folder, path.relative_to(roots[folder]).as_posix()) not in decided:
                problems.append(f"{folder}/{path.name} has no decision")
    return problems


def _check_writes(trial: Trial, roots: dict[str, Path]) -> list[str]:
    """No file was written outside Pictures, quarantine, rejected and state_dir."""
    home = trial.home
    allowed = [root.relative_to(home.path).as_posix() + "/" for root in roots.values()]
    allowed.append(home.state_dir.relative_to(home.path).as_posix() + "/")
    after = snapshot(home.path)
    return [f"written outside the allowed folders: {path}" for path, status in after.items()
            if trial.before.get(path) != status
            and not any(path.startswith(prefix) for prefix in allowed)]

