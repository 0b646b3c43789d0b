"""The IMAP source when things go wrong mid-run: kill -9, a server restart; and `watch`."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests import mails
from tests.imap_helpers import read_text, running, staged_count, wait_for, write_config
from tests.support.proxy import FaultyProxy

COUNT = 24


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


def assert_all_taken_once(home, mailbox, folder):
    expected = {f"photo{number:02d}.jpg" for number in range(COUNT)} | {"extra-a.jpg",
                                                                       "extra-b.jpg"}
    assert set(home.files(home.pictures)) == expected
    assert home.files(home.quarantine) == [] and home.files(home.rejected) == []
    assert mailbox.uids(folder) == []
    assert len(mailbox.uids(f"processed.{folder}")) >= COUNT


def test_kill_9_at_several_points_then_rerun_loses_nothing_and_takes_nothing_twice(
        home, mailbox, messages):
    for raw in messages:
        mailbox.append("killed", raw, create=True)
    config = write_config(home, mailbox, "killed")
    log_path = home.path / "run.log"
    for label, progress in (("while fetching", lambda: staged_count(home) >= 3),
                            ("while fetching, later", lambda: staged_count(home) >= 12),
                            ("while gating", lambda: len(home.files(home.pictures)) >= 4)):
        with running(home, config, "run", log_path) as process:
            wait_for(lambda: progress() or process.poll() is not None, label)
            process.send_signal(signal.SIGKILL)
    summary = home.run("--config", config, "run", "--json")
    assert summary.returncode == 0, read_text(log_path) + summary.stderr
    assert_all_taken_once(home, mailbox, "killed")
    again = json.loads(home.run("--config", config, "run", "--json").stdout)
    assert again["fetched"] == 0 and again["promoted"] == 0


def test_server_restart_mid_run_is_retried_and_resumed(home, own_dovecot, messages):
    mailbox = own_dovecot()                 # stopped and started: a server of its own
    server = mailbox.server
    for raw in messages:
        mailbox.append("restarted", raw, create=True)
    config = write_config(home, mailbox, "restarted", retry_attempts=20)
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
    assert_all_taken_once(home, mailbox, "restarted")


def test_watch_takes_new_photos_survives_a_restart_and_stops_cleanly_on_sigterm(home,
                                                                              own_dovecot):
    mailbox = own_dovecot()                 # restarted: a server of its own
    mailbox.create_folder("watched")
    config = write_config(home, mailbox, "watched", idle_seconds=600.0)
    log_path = home.path / "watch.log"
    with running(home, config, "watch", log_path) as process:
        wait_for(lambda: "waiting for new mail" in read_text(log_path)
                 or process.poll() is not None, "watch to start waiting")
        mailbox.append("watched", mails.with_images([("new.jpg", mails.picture(400))]))
        wait_for(lambda: home.files(home.pictures) == ["new.jpg"] or process.poll() is not None,
                 "the photo to reach Pictures", timeout=60)
        assert process.poll() is None, read_text(log_path)
        mailbox.server.restart()  # the watching connection drops: watch reconnects
        wait_for(lambda: read_text(log_path).count("waiting for new mail") >= 2
                 or process.poll() is not None, "watch to reconnect")
        mailbox.append("watched", mails.with_images([("after.jpg", mails.picture(402))]))
        wait_for(lambda: len(home.files(home.pictures)) == 2 or process.poll() is not None,
                 "the second photo to reach Pictures", timeout=60)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, read_text(log_path)
    log = read_text(log_path)
    assert "new mail" in log and "reconnecting" in log and "watch: stopped" in log
    assert home.files(home.pictures) == ["after.jpg", "new.jpg"]
    assert "Traceback" not in log


def test_watch_polls_a_server_without_idle(home, own_dovecot):
    mailbox = own_dovecot(capabilities="IMAP4rev1 UIDPLUS")
    config = write_config(home, mailbox, "INBOX", poll_seconds=1.0)
    log_path = home.path / "watch.log"
    with running(home, config, "watch", log_path) as process:
        wait_for(lambda: "polling every" in read_text(log_path)
                 or process.poll() is not None, "watch to start polling")
        mailbox.append("INBOX", mails.with_images([("p.jpg", mails.picture(401))]))
        wait_for(lambda: home.files(home.pictures) == ["p.jpg"] or process.poll()
                 is not None, "the photo to reach Pictures")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, read_text(log_path)
    assert os.path.exists(log_path) and "Traceback" not in read_text(log_path)


def test_watch_stops_at_once_when_sigterm_comes_while_the_server_answers_idle(home, mailbox):
    """SIGTERM after IDLE is sent, before the server's "+ idling" is back (a slow link or a
    busy machine): entering IDLE is not cut in half, so the goodbye is not stuck."""
    mailbox.create_folder("stopped")
    with FaultyProxy((mailbox.host, mailbox.port)) as proxy:
        config = write_config(home, mailbox, "stopped", port=proxy.port, idle_seconds=600.0,
                              timeout_seconds=20.0)
        proxy.slow_reply_to(b" IDLE\r\n", 1.0)
        log_path = home.path / "watch.log"
        with running(home, config, "watch", log_path) as process:
            wait_for(lambda: proxy.sent.is_set() or process.poll() is not None,
                     "watch to send IDLE")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=8) == 0, read_text(log_path)
    log = read_text(log_path)
    assert "watch: stopped" in log and "Traceback" not in log, log
