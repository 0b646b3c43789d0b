"""Shared pieces of the IMAP end-to-end tests: config files and polling with a deadline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from tests import mails

PASSWORD = "Sesame-Frame-77"


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(home, server, folder: str, *, password: str = PASSWORD,
                 name: str = "config.toml", **keys) -> str:
    """A config with only the IMAP source on, reading ``folder`` of user ``frame``."""
    secret = home.path / f"{name}.password"
    secret.write_text(password + "\n")
    settings = {"enabled": True, "host": server.host, "port": server.port, "security": "none",
                "username": "frame", "password_file": str(secret), "folder": folder,
                "processed_folder": f"processed/{folder}", "allowed_senders": [mails.FAMILY],
                "retry_wait_seconds": 0.1, "timeout_seconds": 10.0}
    settings.update(keys)
    lines = ["[sources.folder]", "enabled = false", "", "[sources.imap]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in settings.items()]
    path = home.path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


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
