"""What the page's buttons do: the same functions as the command line, under the same lock.

Each action takes the instance lock (``locking.instance_lock``) exactly as the CLI does, so
the timer's run and a click never race; when a run holds it, the click waits up to
``LOCK_WAIT_SECONDS`` and then gives up with ``Busy`` ("busy, try again in a minute").
The library changes only through ``moves`` plans: ``quarantine.restore`` (the CLI's
restore, pair remembered), ``removals.remove_from_frame`` and ``removals.undo_removal``.
Every file is named by a decision (or removal, or refused-sender) id from the store, never
by a path from the request.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator

from pipeline import config_edit, quarantine
from pipeline.config import Config
from pipeline.errors import AlreadyRunning, PipelineError
from pipeline.locking import instance_lock
from pipeline.store import Store

LOCK_WAIT_SECONDS = 3.0


class Busy(PipelineError):
    """A run (or another click) holds the instance lock for longer than a click waits."""


class NotFound(PipelineError):
    """The id names nothing this action applies to."""


@contextlib.contextmanager
def locked(config: Config) -> Iterator[Store]:
    """The instance lock (waiting briefly) and the store, as the CLI's actions hold them."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    with contextlib.ExitStack() as stack:
        while True:
            try:
                stack.enter_context(instance_lock(config.library.state_dir))
                break
            except AlreadyRunning:
                if time.monotonic() > deadline:
                    raise Busy("busy: frame-ingest is filing photos right now; try again in "
                               "a minute") from None
                time.sleep(0.1)     # polling the lock, bounded by the deadline
        yield stack.enter_context(Store(config.database))


def restore(config: Config, decision_id: int) -> Path:
    """``quarantine restore`` of the quarantined file of ``decision_id``."""
    with locked(config) as store:
        row = store.decision(decision_id)
        if row is None or row["folder"] != "quarantine" or row["restored_at"]:
            raise NotFound(f"nothing in quarantine has the id {decision_id}")
        return quarantine.restore(store, config, row["path"])


def remove_from_frame(config: Config, decision_id: int) -> Path:
    """Move the photo a promotion put into Pictures out to the removed folder."""
    with locked(config) as store:
        path = picture_of(config, store, decision_id)
        if path is None:
            raise NotFound(f"no photo on the frame has the id {decision_id}")
        from pipeline import removals   # i14-frame's module (the removed-stays-removed feature)
        return removals.remove_from_frame(config, store, path)


def undo_removal(config: Config, removal_id: int) -> Path:
    from pipeline import removals
    with locked(config) as store:
        return removals.undo_removal(config, store, removal_id)


def allow_sender(config: Config, sender_id: int) -> str:
    """Add a refused sender's address to allowed_senders; its refused mail comes back with
    the next run (``sources.imap.ImapSource.recall_allowed``). Returns the address."""
    with locked(config) as store:
        row = store.refused_sender(sender_id)
        if row is None:
            raise NotFound(f"no refused sender has the id {sender_id}")
        config_edit.allow_sender(config.path, row["address"])
        return row["address"]


def picture_of(config: Config, store, decision_id: int) -> Path | None:
    """The file in Pictures that decision ``decision_id`` put there, if it is still there."""
    row = store.decision(decision_id)
    if row is None or row["folder"] != "pictures":
        return None
    return inside(config.library.pictures, row["path"])


def inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if that is an existing file inside ``root`` (store paths are the
    product's own, but a page never follows one out of its folder), else None."""
    path = root / relative
    try:
        if path.is_file() and path.resolve().is_relative_to(root.resolve()):
            return path
    except (OSError, ValueError):
        pass
    return None
