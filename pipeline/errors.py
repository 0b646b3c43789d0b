"""The exception tree of frame-ingest.

Every error the program raises on purpose is a ``PipelineError``; ``cli.main`` is the one
place that turns them into messages and exit codes. Adapters translate third-party
exceptions at their boundary (``raise TransientSourceError(...) from exc``) so nothing
above them needs to know imaplib, requests or sqlite3::

    PipelineError
    ├── ConfigError              exit 2: the configuration file or the command line is wrong
    ├── AlreadyRunning           exit 75: another instance holds the lock of this state_dir
    ├── StoreError               the signature store cannot be opened, read or written
    ├── LibraryError             a file could not be moved into or out of the library folders
    └── SourceError              a source (folder, IMAP, Dropbox) failed
        ├── TransientSourceError     worth retrying: network drop, timeout, 5xx, rate limit
        └── PermanentSourceError     not worth retrying: bad credentials, missing folder
"""

from __future__ import annotations


class PipelineError(Exception):
    """Root of every error frame-ingest raises deliberately."""


class ConfigError(PipelineError):
    """Raised when the configuration is invalid; carries every problem found, one per line."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class AlreadyRunning(PipelineError):
    """Raised when another frame-ingest process holds the lock of the same state_dir."""


class StoreError(PipelineError):
    """Raised when the SQLite signature store cannot be used (with advice on what to check)."""


def state_dir_unwritable(directory, exc: OSError) -> StoreError:
    """The one line for a state directory that cannot be written (an SD card that turned
    read-only, a full disk, wrong permissions)."""
    return StoreError(f"state directory {directory}: not writable ({exc.strerror or exc}); "
                      "nothing was lost: make it writable (a card that turned read-only is "
                      "failing: copy it off) and rerun")


class LibraryError(PipelineError):
    """Raised when a file move into Pictures, quarantine or rejected fails (disk full, read-only)."""


class SourceError(PipelineError):
    """Raised when a source cannot fetch; ``source`` names it (e.g. ``imap``)."""

    def __init__(self, message: str, source: str = ""):
        self.source = source
        super().__init__(message)


class TransientSourceError(SourceError):
    """Raised for failures that may pass on their own: retried with backoff."""


class PermanentSourceError(SourceError):
    """Raised for failures that need a person: wrong password, revoked token, missing folder."""
