"""Crash safety by fault injection: SIGKILL at seeded random moments, then the invariant.

Each trial (tests/support/crashes.py) places 6-10 inputs at the drop folder, the emulated
Dropbox and Pictures, starts ``run`` or ``gate`` as a subprocess, kills it at a random
moment (sometimes again during its recovery), reruns to completion and checks that every
input is in exactly one of Pictures, quarantine or rejected, byte-identical; that no picture
is in Pictures twice; that the store agrees with the folders and passes integrity_check; and
that nothing was written outside the library folders and state_dir.

``FRAME_INGEST_KILL_TRIALS=500`` runs more trials; ``FRAME_INGEST_KILL_SEED=N`` replays one.

The every-step trials below take one prepared situation (a better copy replacing a photo in
Pictures; a restore from quarantine) and kill it, under strace, as each file-changing call
begins, each time in a fresh copy; the reruns must reach the end state of an unkilled run
and the same invariant. They need ``strace`` (tests/setup-and-run.sh installs it).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import make_home
from tests.support import crashes, scenarios

TRIALS = int(os.environ.get("FRAME_INGEST_KILL_TRIALS", "50"))
ONLY_SEED = os.environ.get("FRAME_INGEST_KILL_SEED")
FIRST_SEED = 1000
PARALLEL = 2


@pytest.fixture
def trial_root(tmp_path):
    """Where trial HOMEs live: tmpfs when there is one. A SIGKILL is not a power cut, so
    fsync costs nothing to the test's meaning, and on tmpfs it costs no time either."""
    shared_memory = Path("/dev/shm")
    if not (shared_memory.is_dir() and os.access(shared_memory, os.W_OK)):
        yield tmp_path
        return
    root = Path(tempfile.mkdtemp(prefix="frame-ingest-kill-", dir=shared_memory))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def corpus() -> scenarios.Corpus:
    return scenarios.build_corpus()


def new_trial(seed: int, root: Path, servers: dict, command: str | None = None,
              everything: bool = False) -> tuple[crashes.Trial, random.Random]:
    rng = random.Random(seed)
    sources: list = [scenarios.FolderScenario()]
    if everything or rng.random() < 0.4:
        sources.append(scenarios.LibraryScenario())
    if everything or rng.random() < 0.3:
        dropbox = servers["dropbox"]
        sources.append(scenarios.DropboxScenario(
            dropbox.emulator, dropbox.app_key, f"{dropbox.folder}/Kill {seed}",
            rng.choice(["keep", "move", "delete"])))
    if everything or rng.random() < 0.3:
        mailbox = servers["imap"]
        sources.append(scenarios.ImapScenario(mailbox.server, mailbox.user, mailbox.password,
                                              f"Kill{seed}"))
    command = command or rng.choice(sorted(crashes.COMMANDS))
    return crashes.Trial(seed, make_home(root / f"trial-{seed}" / "home"), sources,
                         command), rng


def play(trial: crashes.Trial, rng: random.Random, corpus, estimates: dict) -> list[str]:
    """Prepare, kill (maybe twice), finish, check. Returns the invariant's problems."""
    trial.prepare(corpus, rng)
    crashes.COMMANDS[trial.command](trial)
    estimate = estimates.get(trial.command)
    if estimate is None:
        took = trial.run_and_kill(trial.command, 600)
    elif rng.random() < 0.5:                        # at a random time
        took = trial.run_and_kill(trial.command, rng.uniform(0, estimate))
    else:                                           # just after a moment seen in the HOME
        moment = "staging" if trial.command == "run" and rng.random() < 0.5 else "filing"
        delay = 0.0 if rng.random() < 0.5 else rng.uniform(0, 0.05)
        took = trial.run_and_kill(trial.command, delay, when=moment)
    if estimate is None:
        estimates[trial.command] = took
    if estimate and rng.random() < 0.2:            # killed again while recovering
        trial.run_and_kill(crashes.FINISH[trial.command][-1], rng.uniform(0, 0.05),
                           when="filing")
    for command in crashes.FINISH[trial.command]:
        final = trial.run(command)
        if final.returncode != 0:
            return [f"seed {trial.seed}: the final {command} exited {final.returncode}: "
                    f"{final.stderr.strip().splitlines()[-3:]}"]
    problems = crashes.check_invariant(trial)
    parent = trial.home.path.parent
    strays = sorted(entry.name for entry in parent.iterdir() if entry.name != "home")
    if strays:
        problems.append(f"seed {trial.seed}: written beside HOME: {strays}")
    return problems


@pytest.mark.timeout(max(300, 4 * TRIALS))
def test_sigkill_at_random_moments_loses_nothing_and_files_nothing_twice(trial_root, dropbox,
                                                                        mailbox, corpus):
    servers = {"dropbox": dropbox, "imap": mailbox}
    estimates: dict[str, float] = {}
    started = time.monotonic()
    for command in sorted(crashes.COMMANDS):      # calibration: one unkilled trial each
        trial, rng = new_trial(FIRST_SEED - 1 - len(estimates), trial_root, servers, command,
                               everything=True)
        assert play(trial, rng, corpus, estimates) == []
        assert trial.kills == 0
    seeds = [int(ONLY_SEED)] if ONLY_SEED else range(FIRST_SEED, FIRST_SEED + TRIALS)

    def one(seed: int) -> tuple[crashes.Trial, list[str]]:
        trial, rng = new_trial(seed, trial_root, servers)
        try:
            return trial, play(trial, rng, corpus, estimates)
        except Exception as exc:            # one broken trial must not hide the others
            return trial, [f"seed {seed}: {type(exc).__name__}: {exc}"]

    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(one, seeds))
    problems = [problem for _, found in outcomes for problem in found]
    trials = [trial for trial, _ in outcomes]
    interrupted = [note for trial in trials for note in trial.interrupted]
    mid_gate = sum(1 for note in interrupted if "journal=0" not in note)
    print(f"\n{len(trials)} trials in {time.monotonic() - started:.1f} s, "
          f"{sum(t.kills for t in trials)} kills ({mid_gate} with a move in flight, "
          f"{sum('staged=0' not in n for n in interrupted)} with items staged); "
          f"unkilled durations {estimates}")
    assert problems == [], "\n".join(problems)
    assert sum(trial.kills for trial in trials) >= len(trials) // 2, "too few kills landed"


# ----------------------------------------------------------------------------- every step
# One prepared situation, killed as each file-changing call begins (see
# crashes.kill_at_every_step), then finished by the reruns a person or the timer would make.


def situation(root: Path, command: str) -> crashes.Trial:
    """A HOME with the drop folder on, to be filled with ``send`` and copied per kill of
    ``command`` (the name problems are reported under)."""
    assert crashes.STRACE, "the every-step trials need strace (apt-get install strace)"
    folder = scenarios.FolderScenario()
    trial = crashes.Trial(0, make_home(root / "template" / "home"), [folder], command)
    trial.config_path.write_text(folder.config())
    trial.config_path.chmod(0o600)
    return trial


def send(trial: crashes.Trial, name: str, data: bytes, kind: str) -> None:
    trial.home.drop(name, data)
    trial.sent.append(scenarios.Input(name, data, kind))


def ran(trial: crashes.Trial, *arguments: str) -> list[str]:
    """Run a command to its end; a problem line if it did not exit 0."""
    result = trial.run(*arguments)
    if result.returncode == 0:
        return []
    return [f"`{' '.join(arguments)}` exited {result.returncode}: "
            f"{result.stderr.strip().splitlines()[-2:]}"]


def where(trial: crashes.Trial, data: bytes) -> dict[str, list[str]]:
    """folder name -> paths in it holding exactly ``data``."""
    found: dict[str, list[str]] = {}
    for folder, path, digest in crashes.outcome(trial.home):
        if digest == crashes.sha(data):
            found.setdefault(folder, []).append(path)
    return found


def test_a_replace_killed_at_every_step_is_finished_by_the_next_run(trial_root, corpus):
    original, better = corpus.photos[3], corpus.larger[3]
    template = situation(trial_root, "run")
    send(template, "IMG_03.jpg", original, "photo")
    assert ran(template, "run") == []
    send(template, "IMG_03 big.jpg", better, "larger")   # the full-size copy arrives

    def finish(trial: crashes.Trial, _position: int) -> list[str]:
        problems = ran(trial, "run")
        if where(trial, better) != {"Pictures": ["IMG_03 big.jpg"]} or \
                list(where(trial, original)) != ["DuplicatePictures"]:
            problems.append(f"not replaced: better copy in {where(trial, better)}, original "
                            f"in {where(trial, original)}")
        return problems

    started = time.monotonic()
    steps, problems = crashes.kill_at_every_step(template, ("run",), trial_root, finish)
    print(f"\nreplace: {len(steps)} steps killed in {time.monotonic() - started:.1f} s")
    assert problems == [], "\n".join(problems)
    assert {"link", "unlink", "rename", "fsync"} <= {name for name, _ in steps}, steps


def quarantined(trial: crashes.Trial) -> dict[str, str]:
    """``quarantine list --json``: name -> the library file it was taken for."""
    result = trial.run("quarantine", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {entry["name"]: entry["duplicate_of"] for entry in json.loads(result.stdout)}


def test_a_restore_killed_at_every_step_leaves_the_photo_in_pictures_once_and_the_pair_remembered(
        trial_root, corpus):
    kept, copy = corpus.photos[4], corpus.recompressed[4]
    template = situation(trial_root, "quarantine restore")
    send(template, "IMG_04.jpg", kept, "photo")
    assert ran(template, "run") == []
    send(template, "IMG_04 small.jpg", copy, "recompressed")   # taken for a duplicate...
    assert ran(template, "run") == []
    [name] = quarantined(template)                              # ...which it is not

    restore = ("quarantine", "restore", name)
    # Whichever command comes next finishes a restore cut short (docs/commands.md): the
    # timer's run or resweep, or the person restoring again. Steps take turns.
    recoveries = [("run",), ("resweep",), restore]

    def finish(trial: crashes.Trial, position: int) -> list[str]:
        recovery = recoveries[position % len(recoveries)] if position >= 0 else ("run",)
        if recovery == restore:
            again = trial.run(*restore)     # or it had finished: "not in quarantine" is true
            problems = [] if again.returncode == 0 or "not in quarantine" in again.stderr \
                else [f"restoring again exited {again.returncode}: {again.stderr.strip()}"]
        else:
            problems = ran(trial, *recovery)
            if (trial.home.quarantine / name).exists():     # not begun: restored again
                problems += ran(trial, *restore)
        if where(trial, copy) != {"Pictures": ["IMG_04 small.jpg"]}:
            problems.append(f"the restored photo is in {where(trial, copy)}")
        before = crashes.outcome(trial.home)
        problems += ran(trial, "resweep")
        if crashes.outcome(trial.home) != before:
            problems.append(f"the resweep separated the pair again: "
                            f"{sorted(crashes.outcome(trial.home) ^ before)}")
        send(trial, "IMG_04 again.jpg", copy, "copy")       # the same photo sent again
        problems += ran(trial, "run")
        again = {entry: of for entry, of in quarantined(trial).items()
                 if entry.endswith("IMG_04 again.jpg")}
        if list(again.values()) != ["IMG_04 small.jpg"]:    # a copy of the restored file,
            problems.append(f"sent again, it was filed as {again}")   # not of its partner
        return problems

    started = time.monotonic()
    steps, problems = crashes.kill_at_every_step(template, restore, trial_root, finish)
    print(f"\nrestore: {len(steps)} steps killed in {time.monotonic() - started:.1f} s")
    assert problems == [], "\n".join(problems)
    assert {"link", "unlink"} <= {step for step, _ in steps}, steps
