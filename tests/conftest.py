"""Shared fixtures: a throwaway HOME for end-to-end runs of the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.fixture
def home(tmp_path: Path) -> Home:
    path = tmp_path / "home"
    path.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("FRAME_INGEST", "XDG_"))}
    env.update(HOME=str(path), PYTHONPATH=str(ROOT), JOURNAL_STREAM="")
    env.pop("JOURNAL_STREAM")
    return Home(path, env)
