"""Check against the registry that frame-ingest installs from binary wheels on a Raspberry Pi.

For CPython 3.11 (Raspberry Pi OS Bookworm, glibc 2.36):

- 64-bit (manylinux aarch64): the whole runtime dependency set must resolve to wheels on
  PyPI alone; exit 1 if it does not.
- 32-bit (armv7l): each runtime requirement is looked up on PyPI, then on piwheels
  (https://www.piwheels.org/simple, Raspberry Pi OS's default extra index); the table says
  where each wheel comes from. A requirement found nowhere is an error (exit 1); piwheels
  being unreachable from here is said, not an error.

Environment markers in pyproject.toml are evaluated for each platform here, because
``pip download --platform`` evaluates them for the machine it runs on. Needs the network;
not part of the offline test suite. Its output goes into docs/operations.md.

    python3 .ci/check-wheels.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # pip always carries a copy
    from pip._vendor.packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPI = "https://pypi.org/simple"
PIWHEELS = "https://www.piwheels.org/simple"
GLIBC = range(17, 37)  # manylinux_2_17 .. manylinux_2_36 (Bookworm's glibc)
TARGETS = {
    "aarch64": ["manylinux2014_aarch64", "linux_aarch64",
                *(f"manylinux_2_{minor}_aarch64" for minor in GLIBC)],
    "armv7l": ["manylinux2014_armv7l", "linux_armv7l",
               *(f"manylinux_2_{minor}_armv7l" for minor in GLIBC)],
}


def requirements(machine: str) -> list[str]:
    """The runtime requirements that apply on ``machine``, markers removed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    environment = {"platform_machine": machine, "sys_platform": "linux",
                   "platform_system": "Linux", "python_version": "3.11",
                   "python_full_version": "3.11.2", "implementation_name": "cpython",
                   "platform_python_implementation": "CPython", "os_name": "posix"}
    chosen = []
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            requirement.marker = None
            chosen.append(str(requirement))
    return chosen


def download(machine: str, wanted: list[str], indexes: list[str], deps: bool
             ) -> tuple[bool, list[str], str]:
    """(resolved, wheel file names, pip's last error line) for a download into a temp dir."""
    platforms = [argument for platform in TARGETS[machine]
                 for argument in ("--platform", platform)]
    index_arguments = ["--index-url", indexes[0]]
    for extra in indexes[1:]:
        index_arguments += ["--extra-index-url", extra]
    # this machine's pip configuration (local mirrors, constraints) must not count
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "pip", "download", "--quiet",
                   "--disable-pip-version-check", "--only-binary=:all:", *platforms,
                   "--python-version", "3.11", "--implementation", "cp",
                   "--abi", "cp311", "--abi", "abi3", "--abi", "none", *index_arguments,
                   *([] if deps else ["--no-deps"]), "--dest", folder, *wanted]
        result = subprocess.run(command, capture_output=True, text=True, env=env,
                                timeout=600)
        files = sorted(path.name for path in Path(folder).glob("*.whl"))
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    return result.returncode == 0, files, errors[-1] if errors else ""


def reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/pip/", timeout=20) as response:
            return response.status == 200
    except OSError:
        return False


def describe(wheel: str) -> str:
    name, version, *tags = wheel[:-len(".whl")].split("-")
    return f"{name} {version} ({'-'.join(tags[-3:])})"


def main() -> int:
    failed = False
    print("frame-ingest runtime dependencies, CPython 3.11, binary wheels only "
          f"(checked with pip download against {PYPI} and {PIWHEELS})\n")

    wanted = requirements("aarch64")
    ok, files, error = download("aarch64", wanted, [PYPI], deps=True)
    print(f"64-bit Raspberry Pi OS (manylinux aarch64), PyPI alone: "
          f"{'resolves' if ok else 'DOES NOT RESOLVE: ' + error}")
    for wheel in files:
        print(f"  {describe(wheel)}")
    failed |= not ok

    piwheels_up = reachable(PIWHEELS)
    print(f"\n32-bit Raspberry Pi OS (armv7l): piwheels "
          f"{'reachable' if piwheels_up else 'NOT REACHABLE from here'}")
    from_pypi, elsewhere = [], []
    for requirement in requirements("armv7l"):
        ok, files, _ = download("armv7l", [requirement], [PYPI], deps=False)
        if ok:
            from_pypi.append(requirement)
            print(f"  {requirement:28} PyPI      {describe(files[0])}")
            continue
        elsewhere.append(requirement)
        if not piwheels_up:
            print(f"  {requirement:28} no PyPI wheel: piwheels only (not checked: unreachable)")
            continue
        ok, files, error = download("armv7l", [requirement], [PIWHEELS], deps=False)
        print(f"  {requirement:28} " + (f"piwheels  {describe(files[0])}" if ok
                                        else f"NOWHERE: {error}"))
        failed |= not ok
    # what the PyPI-served requirements pull in; one that depends on a piwheels-only
    # package cannot resolve on PyPI alone, which is said, not an error
    pulled, waiting = set(), []
    direct = {Requirement(line).name.lower().replace("-", "_") for line in from_pypi}
    for requirement in from_pypi:
        ok, files, error = download("armv7l", [requirement], [PYPI], deps=True)
        if not ok:
            waiting.append(requirement)
            continue
        pulled |= {wheel for wheel in files if wheel.split("-")[0].lower() not in direct}
    print("  pulled in by those, from PyPI: "
          + ", ".join(describe(wheel) for wheel in sorted(pulled)))
    if waiting:
        print(f"  needing a piwheels package besides: {', '.join(waiting)}")
    if elsewhere:
        print(f"  from piwheels on a Pi: {', '.join(elsewhere)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
