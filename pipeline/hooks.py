"""``[library] after_promote``: a command run once at the end of a run that promoted photos.

Its purpose is to tell the frame viewer at once (docs/operations.md has a recipe that makes
picframe show new arrivals). The command is a list of words run without a shell (so a
file name can never become a command); the promoted files' absolute paths are on its
standard input, one per line (UTF-8, names that are not valid UTF-8 as their bytes). It
runs after the run has released the instance lock, in frame-ingest's working directory and
environment.

Whatever happens to it, the run's outcome stays what it was: a program that is missing or
cannot be started, a nonzero exit, or a command still running after
``after_promote_timeout`` seconds (default 30: enough for a request to the frame on a busy
Pi, short for a run; the command and what it started are then killed) is logged in one
line, and the run still exits as it would have. Its output is not passed on (``run --json``
prints one JSON object on stdout); the last line it wrote to stderr goes into the failure
line.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path

from pipeline.config import Config
from pipeline.text import shown

log = logging.getLogger("frame-ingest")


def after_promote(config: Config, paths: list[Path]) -> bool:
    """Run the configured command with ``paths`` on stdin; True when it succeeded (or no
    command is configured). Never raises."""
    command = list(config.library.after_promote)
    if not command or not paths:
        return True
    lines = b"".join(os.fsencode(path) + b"\n" for path in paths)
    program, timeout = command[0], config.library.after_promote_timeout
    try:
        # its own process group, so a timeout stops what it started too (sh -c "sleep; ...")
        child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        log.warning("after_promote: cannot run %s: %s (the run is not affected)",
                    shown(program), exc.strerror or exc)
        return False
    try:
        _, stderr = child.communicate(lines, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        log.warning("after_promote: %s did not finish within %g s; stopped it (the run "
                    "is not affected)", shown(program), timeout)
        return False
    if child.returncode != 0:
        said = stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {said[-1]}" if said else ""
        log.warning("after_promote: %s exited with status %d%s (the run is not affected)",
                    shown(program), child.returncode, shown(detail))
        return False
    log.info("after_promote: %s told about %d new photo(s)", shown(program), len(paths))
    return True
