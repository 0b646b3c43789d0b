"""Network faults: each is retried within bounds, and the run either completes or exits 1 with
one clear line, leaving the source's state untouched for what did not finish.

IMAP goes through a tiny TCP proxy (tests/support/proxy.py) that cuts a connection in the
middle of a large message or stalls completely; Dropbox faults come from the emulator.
(Single retried faults and a server restart mid-run are in test_source_dropbox.py and
test_imap_resilience.py; here: faults that outlast the retries, and timeouts.)
"""

from __future__ import annotations

import json
import random
import sqlite3
import time

import pytest

from tests import images, mails
from tests.conftest import error_lines
from tests.imap_helpers import write_config
from tests.support import crashes, scenarios
from tests.support.proxy import FaultyProxy


def state(home, source: str) -> dict:
    database = home.state_dir / "store.sqlite3"
    if not database.exists():
        return {}
    with sqlite3.connect(database) as connection:
        return {key: value for key, value in connection.execute(
            "SELECT key, value FROM source_state WHERE source = ? AND key != 'last_run'",
            (source,))}


def staged(home) -> list[str]:
    staging = home.state_dir / "staging"
    return sorted(entry.name for entry in staging.iterdir()) if staging.exists() else []


# ----------------------------------------------------------------------------- IMAP


@pytest.fixture(scope="module")
def large_mail() -> tuple[bytes, bytes]:
    """A mail carrying a ~1.5 MB picture (a small JPEG padded after its end marker)."""
    picture = mails.picture(620) + random.Random(620).randbytes(1_500_000)
    return picture, mails.with_images([("large.jpg", picture)])


def through_proxy(home, mailbox, proxy, folder: str, **keys) -> str:
    return write_config(home, mailbox, folder, **{"port": proxy.port, "retry_attempts": 3,
                                                  "retry_wait_seconds": 0.1, **keys})


def test_imap_connection_cut_during_a_large_message_is_retried_and_completes(home, mailbox,
                                                                            large_mail):
    picture, raw = large_mail
    mailbox.create_folder("CutOnce")
    mailbox.append("CutOnce", raw)
    with FaultyProxy((mailbox.host, mailbox.port)) as proxy:
        proxy.cut_after(600_000)                      # the first connection drops mid-body
        result = home.run("--config", through_proxy(home, mailbox, proxy, "CutOnce"), "run")
        assert proxy.connections >= 2
    assert result.returncode == 0, result.stderr
    assert (home.pictures / "large.jpg").read_bytes() == picture
    assert mailbox.uids("CutOnce") == []


def test_imap_cut_every_time_exits_1_with_one_line_and_leaves_the_mail(home, mailbox,
                                                                      large_mail):
    picture, raw = large_mail
    mailbox.create_folder("CutAlways")
    mailbox.append("CutAlways", raw)
    uids = mailbox.uids("CutAlways")
    with FaultyProxy((mailbox.host, mailbox.port)) as proxy:
        proxy.cut_after(600_000, connections=50)
        config = through_proxy(home, mailbox, proxy, "CutAlways")
        result = home.run("--config", config, "run")
        assert 2 <= proxy.connections <= 4            # retried, within bounds
    assert result.returncode == 1, result.stderr
    assert len(error_lines(result)) == 1 and "imap" in error_lines(result)[0], result.stderr
    assert "Traceback" not in result.stderr
    assert mailbox.uids("CutAlways") == uids
    assert "\\Seen" not in mailbox.flags("CutAlways", uids[0])
    remembered = json.loads(state(home, "imap").get("folder:CutAlways", '{"last_uid": 0}'))
    assert staged(home) == [] and remembered["last_uid"] < uids[0]
    again = home.run("--config", write_config(home, mailbox, "CutAlways"), "run")
    assert again.returncode == 0 and (home.pictures / "large.jpg").read_bytes() == picture


def test_imap_server_that_stalls_is_given_up_on_after_the_configured_timeout(home, mailbox):
    mailbox.create_folder("Stalled")
    mailbox.append("Stalled", mails.with_images([("a.jpg", mails.picture(621))]))
    with FaultyProxy((mailbox.host, mailbox.port)) as proxy:
        proxy.stall()
        config = through_proxy(home, mailbox, proxy, "Stalled", timeout_seconds=1.0,
                               retry_attempts=2)
        started = time.monotonic()
        result = home.run("--config", config, "run", timeout=60)
        took = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert len(error_lines(result)) == 1 and "timed out" in error_lines(result)[0], \
        result.stderr
    assert took < 30, f"two attempts with a 1 s timeout took {took:.0f} s"
    assert staged(home) == [] and mailbox.uids("Stalled") != []


# ----------------------------------------------------------------------------- Dropbox


@pytest.fixture
def dropbox_trial(home, dropbox):
    scenario = scenarios.DropboxScenario(dropbox.emulator, dropbox.app_key, dropbox.folder)
    trial = crashes.Trial(0, home, [scenario], "run")
    scenario.place(home, [])
    trial.config_path.write_text("[sources.folder]\nenabled = false\n" + scenario.config()
                                 .replace("retries = 2", "retries = 1"))
    trial.config_path.chmod(0o600)
    return trial


def put(trial, name: str, data: bytes) -> str:
    path = f"{trial.scenarios[0].folder}/{name}"
    trial.scenarios[0].emulator.put_file(path, data)
    return path


def test_dropbox_failure_outlasting_the_retries_leaves_the_cursor_where_it_was(dropbox_trial):
    emulator = dropbox_trial.scenarios[0].emulator
    put(dropbox_trial, "first.jpg", images.jpeg(images.photo(630)))
    assert dropbox_trial.run("run").returncode == 0
    cursor = state(dropbox_trial.home, "dropbox")["cursor"]
    path = put(dropbox_trial, "second.jpg", images.jpeg(images.photo(631)))
    emulator.drop_connection_mid_download(path, after_bytes=1000, times=None)
    result = dropbox_trial.run("run")
    assert result.returncode == 1, result.stderr
    assert len(error_lines(result)) == 1 and "second.jpg" in error_lines(result)[0]
    assert state(dropbox_trial.home, "dropbox")["cursor"] == cursor
    assert staged(dropbox_trial.home) == []
    assert emulator.count("files/download", path=path.lower()) == 2    # once + one retry
    emulator.clear_faults()
    assert dropbox_trial.run("run").returncode == 0
    assert dropbox_trial.home.files(dropbox_trial.home.pictures) == ["first.jpg", "second.jpg"]
    assert json.loads(state(dropbox_trial.home, "dropbox")["cursor"])["cursor"] != \
        json.loads(cursor)["cursor"]


@pytest.mark.parametrize("fault", ["server errors", "rate limit", "truncated body"])
def test_dropbox_fault_outlasting_the_retries_exits_1_with_one_line(dropbox_trial, fault):
    emulator = dropbox_trial.scenarios[0].emulator
    path = put(dropbox_trial, "a.jpg", images.jpeg(images.photo(632)))
    if fault == "server errors":
        emulator.fail_next("files/list_folder", 500, times=None)
    elif fault == "rate limit":
        emulator.fail_next("files/list_folder", 429, retry_after=1, times=None)
    else:
        emulator.corrupt_content_hash(path, times=None)
    result = dropbox_trial.run("run")
    assert result.returncode == 1, result.stderr
    assert len(error_lines(result)) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert staged(dropbox_trial.home) == [] and "cursor" not in state(dropbox_trial.home,
                                                                        "dropbox")


def test_dropbox_retry_after_beyond_the_longest_wait_gives_up_until_the_next_run(
        dropbox_trial):
    emulator = dropbox_trial.scenarios[0].emulator
    put(dropbox_trial, "a.jpg", images.jpeg(images.photo(633)))
    emulator.fail_next("files/list_folder", 429, retry_after=3600)
    started = time.monotonic()
    result = dropbox_trial.run("run", timeout=60)
    assert result.returncode == 1 and time.monotonic() - started < 30, result.stderr
    assert "trying again next run" in result.stderr and len(error_lines(result)) == 1
    assert dropbox_trial.run("run").returncode == 0
    assert dropbox_trial.home.files(dropbox_trial.home.pictures) == ["a.jpg"]


def test_dropbox_server_that_stalls_is_given_up_on_after_the_configured_timeout(
        dropbox_trial):
    emulator = dropbox_trial.scenarios[0].emulator
    put(dropbox_trial, "a.jpg", images.jpeg(images.photo(634)))
    dropbox_trial.config_path.write_text(dropbox_trial.config_path.read_text().replace(
        "timeout_seconds = 10", "timeout_seconds = 1"))
    emulator.stall_next("files/list_folder", 20, times=None)
    started = time.monotonic()
    result = dropbox_trial.run("run", timeout=60)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 15, "the 1 s timeout was not honoured"
    assert len(error_lines(result)) == 1 and "Timeout" in error_lines(result)[0], result.stderr
