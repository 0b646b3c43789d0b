"""install.sh on Debian's own Python, and units that call the venv it made.

The happy path of install.sh needs the package index (it pip-installs the dependencies), so
it is tried by hand (docs/operations.md says how); what can be checked offline is checked
here: the one line a user gets when Debian's python3-venv is missing, and that
``install-systemd`` run from a virtual environment writes that environment's executable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = Path("/usr/bin/python3")


def debian_ensurepip() -> Path | None:
    """The folder python3.11-venv installs (ensurepip), when Debian's Python has it."""
    if not DEBIAN_PYTHON.exists():
        return None
    found = subprocess.run([str(DEBIAN_PYTHON), "-c", "import ensurepip; print(ensurepip.__file__)"],
                           capture_output=True, text=True)
    return Path(found.stdout.strip()).parent if found.returncode == 0 else None


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None
                    or debian_ensurepip() is None,
                    reason="hides python3-venv's files in a private mount namespace: needs "
                           "root, unshare and Debian's /usr/bin/python3 with python3-venv")
def test_install_without_python3_venv_says_in_one_line_which_package_to_install(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    # as if python3.11-venv were not installed: its ensurepip folder is empty, for this
    # process only (the private mount disappears with it)
    script = (f"mount --bind {empty} {debian_ensurepip()} && "
              f"exec sh {ROOT / 'install.sh'}")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "install the python3-venv package (sudo apt install python3-venv)" in lines[0]
    assert not (home / ".local/share/frame-ingest-venv").exists()  # no half-made venv left
    assert not (home / ".local/bin/frame-ingest").exists()


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A real virtual environment holding frame-ingest's console script, as pip writes it
    (pip's own script maker); the package and its dependencies come from this interpreter
    (PYTHONPATH), so nothing is downloaded."""
    from pip._vendor.distlib.scripts import ScriptMaker
    folder = tmp_path / "frame-ingest-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True,
                   timeout=120)
    maker = ScriptMaker(None, str(folder / "bin"))
    maker.executable = str(folder / "bin" / "python")
    maker.variants = {""}
    maker.make("frame-ingest = pipeline.cli:main")
    return folder


def venv_env(home) -> dict:
    """This tree and this interpreter's packages (the venv is created from the base
    interpreter, which may not have them when the tests run in a venv themselves)."""
    paths = [str(ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return dict(home.env, SUDO_USER="", PATH="/usr/bin:/bin", PYTHONPATH=os.pathsep.join(paths))


def exec_start(output: str) -> set[str]:
    return set(re.findall(r"^ExecStart=(\S+)", output, re.M))


def test_install_systemd_from_a_venv_link_calls_the_venv_executable(home, venv):
    link = home.path / ".local" / "bin" / "frame-ingest"
    link.parent.mkdir(parents=True)
    link.symlink_to(venv / "bin" / "frame-ingest")
    env = venv_env(home)
    result = subprocess.run([str(link), "install-systemd", "--dry-run"], env=env,
                            cwd=home.path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert exec_start(result.stdout) == {str(venv / "bin" / "frame-ingest")}


def test_install_systemd_run_as_the_venv_python_module_calls_the_venv_executable(home, venv):
    env = venv_env(home)
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pipeline", "install-systemd",
                             "--dry-run"], env=env, cwd=home.path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert exec_start(result.stdout) == {str(venv / "bin" / "frame-ingest")}
