"""One frame-ingest at a time per state_dir: an flock on ``state_dir/lock``.

The kernel drops the lock when the process dies, however it dies, so there is never a stale
lock to clean up. ``run``, ``gate``, ``resweep`` and ``quarantine restore`` all take it;
a second one either waits (``wait=True``) or raises AlreadyRunning (exit 75).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from pipeline.errors import AlreadyRunning, state_dir_unwritable


@contextlib.contextmanager
def instance_lock(state_dir: Path, wait: bool = False) -> Iterator[None]:
    path = state_dir / "lock"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise state_dir_unwritable(state_dir, exc) from exc
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
            raise AlreadyRunning(f"another frame-ingest (pid {holder or '?'}) is working on "
                                 f"{state_dir}; try again later") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(descriptor)
