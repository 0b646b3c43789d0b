"""Shared pieces of the IMAP end-to-end tests: config files, background runs and polling
with a deadline. The server side is the ``mailbox`` fixture (tests/conftest.py)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from tests import mails


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(home, mailbox, folder: str, *, password: str | None = None,
                 name: str = "config.toml", **keys) -> str:
    """A config with only the IMAP source on, reading ``folder`` of ``mailbox`` (a
    ``tests.support.dovecot.Mailbox``) with its password unless ``password`` is given."""
    secret = home.path / f"{name}.password"
    secret.write_text((mailbox.password if password is None else password) + "\n")
    settings = {"enabled": True, "host": mailbox.host, "port": mailbox.port, "security": "none",
                "username": mailbox.user, "password_file": str(secret), "folder": folder,
                "processed_folder": f"processed/{folder}", "allowed_senders": [mails.FAMILY],
                "retry_wait_seconds": 0.1, "timeout_seconds": 10.0}
    settings.update(keys)
    lines = ["[sources.folder]", "enabled = false", "", "[sources.imap]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in settings.items()]
    path = home.path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@contextlib.contextmanager
def running(home, config: str, command: str, log_path: Path):
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


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    """Poll ``condition`` until it is truthy; fail saying ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)  # polling interval, bounded by the deadline
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def staged_count(home) -> int:
    staging = home.state_dir / "staging"
    if not staging.exists():
        return 0
    return sum(1 for entry in staging.iterdir() if (entry / "meta.json").exists())


def read_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
