"""Changing the configuration file from the program: today, adding an allowed sender.

The file is a person's: its comments, order, spacing and file mode stay as they were.
tomlkit edits the parsed document in place and writes back exactly what it read except the
one change; the result is parsed and checked again (``config.parse_config``) before it
replaces the old file, atomically (temp file in the same folder with the same mode, fsync,
rename, fsync of the folder), so a crash leaves the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tomllib
from pathlib import Path

import tomlkit

from pipeline.config import parse_config
from pipeline.errors import ConfigError, PipelineError
from pipeline.staging import fsync_directory


def allow_sender(path: Path | None, address: str) -> bool:
    """Add ``address`` to ``[sources.imap] allowed_senders`` of the file at ``path``;
    False if it was there already. Raises PipelineError when the file cannot be changed."""
    if path is None:
        raise PipelineError("frame-ingest runs on built-in defaults: there is no "
                            "configuration file to add the sender to")
    path = path.resolve()
    try:
        text = path.read_text(encoding="utf-8")
        document = tomlkit.parse(text)
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.TOMLKitError) as exc:
        raise PipelineError(f"{path}: cannot read: {exc}") from None
    imap = document.get("sources", {}).get("imap")
    if imap is None:
        raise PipelineError(f"{path}: has no [sources.imap] section")
    senders = imap.get("allowed_senders")
    if senders is None:
        imap["allowed_senders"] = tomlkit.array()
        senders = imap["allowed_senders"]
    if address.lower() in (str(entry).strip().lower() for entry in senders):
        return False
    senders.append(address.lower())
    changed = tomlkit.dumps(document)
    try:
        parse_config(tomllib.loads(changed), str(path), path)
    except (tomllib.TOMLDecodeError, ConfigError) as exc:
        raise PipelineError(f"{path}: adding {address} would break the file ({exc}); "
                            "nothing was changed") from None
    _replace(path, changed)
    return True


def _replace(path: Path, text: str) -> None:
    """Write ``text`` over ``path`` atomically, keeping its mode (and owner when allowed)."""
    status = path.stat()
    temporary = path.with_name(f".{path.name}.frame-ingest.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), stat.S_IMODE(status.st_mode))
            with contextlib.suppress(PermissionError):
                os.fchown(handle.fileno(), status.st_uid, status.st_gid)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_directory(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise PipelineError(f"{path}: cannot write: {exc.strerror or exc} (the folder must "
                            "be writable for the web service)") from None
