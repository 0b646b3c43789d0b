"""Reading secrets (a mail password, a Dropbox refresh token) from files, carefully.

Secrets live in files or environment variables, never in the configuration itself, and never
in a log line or an error message: callers get the text and nothing here prints it. A file
that other users can read (any group or world permission bit) still works, but each run
says so in one warning line naming the file and the fix, because on a shared machine that
file is the key to the family's mailbox or Dropbox. The same check serves the
configuration file (``config.load_config``): it names the secret files and the senders
that may put pictures on the wall.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from pipeline.staging import fsync_directory

log = logging.getLogger("frame-ingest")

_warned: set[Path] = set()      # one warning per file per run, however often it is read


def warn_if_readable_by_others(path: Path, what: str) -> bool:
    """Log one warning if ``path`` has any group or world permission; True if it did."""
    try:
        status = path.stat()
    except OSError:
        return False
    mode = stat.S_IMODE(status.st_mode)
    if not stat.S_ISREG(status.st_mode) or not mode & 0o077:
        return False
    if path in _warned:
        return True
    _warned.add(path)
    log.warning("%s %s can be read or changed by other users (mode %03o); run: chmod 600 %s",
                what, path, mode, path)
    return True


def read_secret(path: Path, what: str, strip: str | None = None) -> str:
    """The text of a secret file without surrounding ``strip`` characters (white space by
    default); raises OSError or UnicodeDecodeError (callers translate them, without the
    secret) and warns when the file is open to others."""
    text = path.read_text(encoding="utf-8").strip(strip)
    warn_if_readable_by_others(path, what)
    return text


def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, atomically and durably: a
    reader sees the old file or the new one, never a part, and never one open to others."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)   # the umask may only narrow it, never widen
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_directory(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
