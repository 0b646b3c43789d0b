"""The IMAP source when things go wrong mid-run: kill -9, a server restart; and `watch`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import pytest

from tests import mails
from tests.imap_helpers import PASSWORD, read_text, staged_count, wait_for, write_config
from tests.support.dovecot import DovecotServer

USER = "frame"
COUNT = 24


@pytest.fixture(scope="module")
def server():
    with DovecotServer(users={USER: PASSWORD}) as instance:
        yield instance


@pytest.fixture(scope="module")
def messages():
    """COUNT messages with one distinct photo each (and, for the first, two more)."""
    raws = []
    for number in range(COUNT):
        pictures = [(f"photo{number:02d}.jpg", mails.picture(200 + number))]
        if number == 0:
            pictures += [("extra-a.jpg", mails.picture(300)), ("extra-b.jpg", mails.picture(301))]
        raws.append(mails.with_images(pictures))
    return raws


@contextlib.contextmanager
def running(home, config, command, log_path):
    """frame-ingest as a background process whose stderr goes to ``log_path``; killed on the
    way out if it is still running (a failed assertion must not leave it behind)."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", config,
                                    command], env=home.env, cwd=home.path,
                                   stdout=subprocess.DEVNULL, stderr=log)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def assert_all_taken_once(home, server, folder):
    expected = {f"photo{number:02d}.jpg" for number in range(COUNT)} | {"extra-a.jpg",
                                                                       "extra-b.jpg"}
    assert set(home.files(home.pictures)) == expected
    assert home.files(home.quarantine) == [] and home.files(home.rejected) == []
    assert server.uids(USER, folder) == []
    assert len(server.uids(USER, f"processed.{folder}")) >= COUNT


def test_kill_9_at_several_points_then_rerun_loses_nothing_and_takes_nothing_twice(
        home, server, messages):
    for raw in messages:
        server.append(USER, "killed", raw, create=True)
    config = write_config(home, server, "killed")
    log_path = home.path / "run.log"
    for label, progress in (("while fetching", lambda: staged_count(home) >= 3),
                            ("while fetching, later", lambda: staged_count(home) >= 12),
                            ("while gating", lambda: len(home.files(home.pictures)) >= 4)):
        with running(home, config, "run", log_path) as process:
            wait_for(lambda: progress() or process.poll() is not None, label)
            process.send_signal(signal.SIGKILL)
    summary = home.run("--config", config, "run", "--json")
    assert summary.returncode == 0, read_text(log_path) + summary.stderr
    assert_all_taken_once(home, server, "killed")
    again = json.loads(home.run("--config", config, "run", "--json").stdout)
    assert again["fetched"] == 0 and again["promoted"] == 0


def test_server_restart_mid_run_is_retried_and_resumed(home, server, messages):
    for raw in messages:
        server.append(USER, "restarted", raw, create=True)
    config = write_config(home, server, "restarted", retry_attempts=20)
    log_path = home.path / "run.log"
    with running(home, config, "fetch", log_path) as process:
        wait_for(lambda: staged_count(home) >= 2 or process.poll() is not None, "progress")
        server.stop()
        wait_for(lambda: "retry" in read_text(log_path) or process.poll() is not None,
                 "a retry to be logged")
        server.start()
        assert process.wait(timeout=120) == 0, read_text(log_path)
    log = read_text(log_path)
    assert "retry 1 of 19" in log, log
    assert staged_count(home) == COUNT + 2
    result = home.run("--config", config, "run", "--json")
    assert result.returncode == 0, result.stderr
    assert_all_taken_once(home, server, "restarted")


def test_watch_takes_new_photos_survives_a_restart_and_stops_cleanly_on_sigterm(home, server):
    server.create_folder(USER, "watched")
    config = write_config(home, server, "watched", idle_seconds=600.0)
    log_path = home.path / "watch.log"
    with running(home, config, "watch", log_path) as process:
        wait_for(lambda: "waiting for new mail" in read_text(log_path)
                 or process.poll() is not None, "watch to start waiting")
        server.append(USER, "watched", mails.with_images([("new.jpg", mails.picture(400))]))
        wait_for(lambda: home.files(home.pictures) == ["new.jpg"] or process.poll() is not None,
                 "the photo to reach Pictures", timeout=60)
        assert process.poll() is None, read_text(log_path)
        server.restart()  # the watching connection drops: watch reconnects
        wait_for(lambda: read_text(log_path).count("waiting for new mail") >= 2
                 or process.poll() is not None, "watch to reconnect")
        server.append(USER, "watched", mails.with_images([("after.jpg", mails.picture(402))]))
        wait_for(lambda: len(home.files(home.pictures)) == 2 or process.poll() is not None,
                 "the second photo to reach Pictures", timeout=60)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, read_text(log_path)
    log = read_text(log_path)
    assert "new mail" in log and "reconnecting" in log and "watch: stopped" in log
    assert home.files(home.pictures) == ["after.jpg", "new.jpg"]
    assert "Traceback" not in log


def test_watch_polls_a_server_without_idle(home):
    with DovecotServer(users={USER: PASSWORD}, capabilities="IMAP4rev1 UIDPLUS") as server:
        config = write_config(home, server, "INBOX", poll_seconds=1.0)
        log_path = home.path / "watch.log"
        with running(home, config, "watch", log_path) as process:
            wait_for(lambda: "polling every" in read_text(log_path)
                     or process.poll() is not None, "watch to start polling")
            server.append(USER, "INBOX", mails.with_images([("p.jpg", mails.picture(401))]))
            wait_for(lambda: home.files(home.pictures) == ["p.jpg"] or process.poll()
                     is not None, "the photo to reach Pictures")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, read_text(log_path)
    assert os.path.exists(log_path) and "Traceback" not in read_text(log_path)
