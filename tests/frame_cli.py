"""The real command line (``pipeline.cli.main``), called in this process for the frame-library
tests: the same parser, commands, exit codes and printed lines as ``frame-ingest ...``,
without an interpreter start per command (about a second each on a loaded 2-core machine).

Every folder is configured with an absolute path under the test's home, so nothing depends
on this process's HOME.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import signal
from dataclasses import dataclass

from pipeline import cli

LIBRARY = """[library]
pictures = "{home}/Pictures"
quarantine = "{home}/DuplicatePictures"
rejected = "{home}/RejectedPictures"
state_dir = "{home}/.local/share/frame-ingest"
removed_folder = "{home}/DeletedPictures"
{library}
[sources.folder]
path = "{home}/PhotoInbox"
"""


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


class FrameCli:
    """``frame-ingest --config <home>/config.toml ...`` for one test home."""

    def __init__(self, home, library: str = "", more: str = ""):
        self.home = home
        self.config = home.path / "config.toml"
        self.config.write_text(LIBRARY.format(home=home.path, library=library) + more)

    def __call__(self, *arguments: str, check: bool = True) -> Outcome:
        stdout, stderr = io.StringIO(), io.StringIO()
        terminate = signal.getsignal(signal.SIGTERM)     # main() installs its own
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = cli.main(["--config", str(self.config), *arguments])
            finally:
                logging.getLogger("frame-ingest").handlers.clear()
                signal.signal(signal.SIGTERM, terminate)
        outcome = Outcome(code, stdout.getvalue(), stderr.getvalue())
        if check and code != 0:
            raise AssertionError(f"frame-ingest {' '.join(arguments)} exited {code}:\n"
                                 f"{outcome.stdout}\n{outcome.stderr}")
        return outcome

    def run(self) -> dict:
        return self("run", "--json").json()

    def quarantined(self) -> list[dict]:
        return self("quarantine", "list", "--json").json()

    def status(self) -> dict:
        return self("status", "--json").json()
