"""Adversarial probes, as a careful user would try them: every kind of thing the inbox and
Pictures can hold (FIFO, socket, device, symlinks in and out, a folder named like a photo),
files vanishing while a run works, and SIGINT or SIGTERM at any moment. Expected each time:
nothing lost, nothing filed twice, no traceback, one clear line, the run goes on. The table
in docs/reliability.md lists every probe with the test that pins it.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time

import pytest

from tests import images
from tests.support import crashes, scenarios
from tests.test_reliability_everyday import assert_clean_output, small_jpeg


def test_special_files_and_symlinks_are_left_in_place_with_one_line_and_real_photos_taken(
        home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "real.jpg").write_bytes(small_jpeg(2101))
    home.inbox.mkdir(parents=True)
    os.mkfifo(home.inbox / "fifo.jpg")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(home.inbox / "socket.jpg"))
    if os.geteuid() == 0:
        os.mknod(home.inbox / "null.jpg", 0o600 | 0o020000, os.makedev(1, 3))
    os.symlink(outside / "real.jpg", home.inbox / "link.jpg")
    os.symlink(outside, home.inbox / "linked folder")
    os.symlink(tmp_path / "nowhere.jpg", home.inbox / "dangling.jpg")
    home.drop("IMG_2102.jpg/inside.jpg", small_jpeg(2102))   # a folder named like a photo
    home.pictures.mkdir(parents=True)
    os.symlink(outside / "real.jpg", home.pictures / "symlink out.jpg")
    (home.pictures / "album.jpg").mkdir()
    (home.pictures / "album.jpg" / "a.jpg").write_bytes(small_jpeg(2103))
    os.mkfifo(home.pictures / "fifo.jpg")

    try:
        result = home.run("run", timeout=60)
        assert result.returncode == 0, result.stderr
        assert_clean_output(result)
        assert [name for name in home.files(home.pictures)
                if not (home.pictures / name).is_symlink()] == ["album.jpg/a.jpg", "inside.jpg"]
        assert (home.pictures / "symlink out.jpg").is_symlink()
        assert (outside / "real.jpg").read_bytes() == small_jpeg(2101)   # never touched
        left = [line for line in result.stderr.splitlines() if "not a regular file" in line]
        assert len(left) == 1, result.stderr
        for name in ("fifo.jpg", "socket.jpg", "link.jpg", "dangling.jpg"):
            assert name in left[0] and os.path.lexists(home.inbox / name), name
        resweep = home.run("resweep", timeout=60)
        assert resweep.returncode == 0, resweep.stderr
        assert_clean_output(resweep)
        assert "scanned=2" in resweep.stderr
    finally:
        listener.close()


@pytest.fixture(scope="module")
def corpus() -> scenarios.Corpus:
    return scenarios.build_corpus()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_or_sigterm_at_any_moment_stops_with_one_line_and_the_next_run_finishes(
        home, corpus, signum):
    rng = random.Random(2200 + signum)
    stops = 0
    for trial_number in range(4):
        trial_home = home if trial_number == 0 else _fresh(home, trial_number)
        trial = crashes.Trial(2200 + trial_number, trial_home,
                              [scenarios.FolderScenario(), scenarios.LibraryScenario()], "run")
        trial.prepare(corpus, rng)
        child = subprocess.Popen(trial.argv("run"), env=trial.env(), cwd=trial_home.path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        moment = crashes.MOMENTS["staging" if trial_number % 2 else "filing"]
        crashes.wait_for_moment(child, moment, trial_home, crashes.count_filed(trial_home))
        try:
            child.wait(timeout=rng.uniform(0, 0.05))
        except subprocess.TimeoutExpired:
            child.send_signal(signum)
            stops += 1
        stdout, stderr = child.communicate(timeout=60)
        assert "Traceback" not in stderr, stderr
        if child.returncode != 0:
            assert child.returncode in (130, -signal.SIGINT, -signal.SIGTERM), (child.returncode, stderr)
            lines = [line for line in stderr.splitlines() if "rerun" in line]
            finished = any(line.startswith("run: ") for line in stderr.splitlines())
            # a signal in the last moments (after the summary: the batch filed at once) may
            # end the process by itself; otherwise the run says it was interrupted
            assert (finished and not lines) or \
                (len(lines) == 1 and "interrupted" in lines[0]), stderr
        final = trial.run("run")
        assert final.returncode == 0, final.stderr
        assert crashes.check_invariant(trial) == []
    assert stops >= 2, "the signal came too late in most trials"


def _fresh(home, number: int):
    from tests.conftest import Home
    path = home.path.parent / f"home-{number}"
    path.mkdir()
    return Home(path, dict(home.env, HOME=str(path)))
