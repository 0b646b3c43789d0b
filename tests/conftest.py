"""Shared fixtures: a throwaway HOME for end-to-end runs of the real command line, and the
session's one Dovecot and one Dropbox emulator.

Servers start once per session (``dovecot``, ``emulator``); each test gets its own part of
them: a fresh IMAP user (``mailbox``), its own Dropbox app key, refresh token and root folder
(``dropbox``). A test that stops or restarts its server, or needs TLS or other capabilities,
builds one of its own with ``own_dovecot(**options)``, stopped when the test ends.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.dovecot import DovecotServer, Mailbox
from tests.support.dropbox_emulator import DropboxEmulator

ROOT = Path(__file__).resolve().parent.parent
_NUMBERS = itertools.count(1)


@dataclass
class Home:
    """A temporary HOME with the default folders, and a way to run frame-ingest in it."""

    path: Path
    env: dict

    @property
    def inbox(self) -> Path:
        return self.path / "PhotoInbox"

    @property
    def pictures(self) -> Path:
        return self.path / "Pictures"

    @property
    def quarantine(self) -> Path:
        return self.path / "DuplicatePictures"

    @property
    def rejected(self) -> Path:
        return self.path / "RejectedPictures"

    @property
    def state_dir(self) -> Path:
        return self.path / ".local" / "share" / "frame-ingest"

    def drop(self, name: str, data: bytes, age_seconds: float = 60.0) -> Path:
        """Put a file in the inbox, old enough to count as completely written."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        path = self.inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        stamp = time.time() - age_seconds
        os.utime(path, (stamp, stamp))
        return path

    def run(self, *arguments: str, check: bool = False, timeout: float = 120,
            extra_env: dict | None = None) -> subprocess.CompletedProcess:
        env = dict(self.env, **(extra_env or {}))
        result = subprocess.run([sys.executable, "-m", "pipeline", *arguments], env=env,
                                cwd=self.path, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"frame-ingest {' '.join(arguments)} exited "
                                 f"{result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def files(self, folder: Path) -> list[str]:
        if not folder.exists():
            return []
        return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*")
                      if path.is_file() and not path.name.startswith("."))


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The lines of a run's stderr that report an error (a failed run says one)."""
    return [line for line in result.stderr.splitlines() if line.startswith(("ERROR", "error"))]


def make_home(path: Path) -> Home:
    """Create ``path`` as a HOME whose environment has none of frame-ingest's or XDG's
    variables from the test run, and runs this tree's ``pipeline``."""
    path.mkdir(parents=True)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("FRAME_INGEST", "XDG_")) and key != "JOURNAL_STREAM"}
    env.update(HOME=str(path), PYTHONPATH=str(ROOT))
    return Home(path, env)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return make_home(tmp_path / "home")


def _label(request: pytest.FixtureRequest) -> str:
    """A short name unique in the session, recognisable in server logs: t12-watch_polls."""
    words = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower().removeprefix("test_"))
    return f"t{next(_NUMBERS)}-{words[:24].strip('_')}"


# ----------------------------------------------------------------------------- IMAP


@pytest.fixture(scope="session")
def dovecot() -> DovecotServer:
    """The session's Dovecot on 127.0.0.1; it has no users until tests add theirs."""
    with DovecotServer(users={}) as server:
        yield server


@pytest.fixture
def mailbox(dovecot: DovecotServer, request: pytest.FixtureRequest) -> Mailbox:
    """A fresh IMAP user with its own password on the session's Dovecot."""
    return dovecot.add_user(_label(request), f"Pw-{secrets.token_hex(8)}")


@pytest.fixture
def own_dovecot(request: pytest.FixtureRequest):
    """``own_dovecot(**options) -> Mailbox``: a Dovecot for this test alone (one it stops or
    restarts, or with ``tls=True`` or ``capabilities=...``), closed when the test ends."""
    servers: list[DovecotServer] = []

    def start(**options) -> Mailbox:
        server = DovecotServer(users={}, **options)
        servers.append(server)
        mailbox = server.add_user(_label(request), f"Pw-{secrets.token_hex(8)}")
        server.start()
        return mailbox

    yield start
    for server in servers:
        server.close()


# ----------------------------------------------------------------------------- Dropbox


@pytest.fixture(scope="session")
def emulator() -> DropboxEmulator:
    """The session's Dropbox emulator (HTTPS on 127.0.0.1, its own CA)."""
    with DropboxEmulator() as instance:
        yield instance


@dataclass
class DropboxAccount:
    """One test's part of the shared emulator: an app key, a refresh token for it, and a
    root folder no other test uses."""

    emulator: DropboxEmulator
    app_key: str
    token: str
    folder: str

    def link(self, home: Home) -> Path:
        """Write the refresh token where frame-ingest looks by default (mode 600)."""
        home.state_dir.mkdir(parents=True, exist_ok=True)
        token_file = home.state_dir / "dropbox-refresh-token"
        token_file.write_text(self.token + "\n")
        token_file.chmod(0o600)
        return token_file


@pytest.fixture
def dropbox(emulator: DropboxEmulator, request: pytest.FixtureRequest) -> DropboxAccount:
    """This test's app key, token and root folder; faults and the request log it leaves
    behind are cleared (and were cleared before it started)."""
    label = _label(request)
    emulator.reset_between_tests()
    bugs_before = len(emulator.internal_errors)
    app_key = f"frame-ingest-{label}"
    yield DropboxAccount(emulator, app_key, emulator.add_refresh_token(app_key), f"/{label}")
    emulator.reset_between_tests()
    assert emulator.internal_errors[bugs_before:] == [], "the emulator itself failed"
