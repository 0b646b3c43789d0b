"""The shipped and generated systemd units pass `systemd-analyze verify` and stay hardened."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import subprocess
from pathlib import Path

import pytest

from pipeline.units import render, shipped_setup

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "systemd").glob("frame-ingest*"))


@pytest.fixture(scope="module")
def shipped_executable():
    """`verify` checks that ExecStart exists; the shipped units name pi's venv (root runs
    CI). The file (and the folders) are created for the check only when missing, then
    removed."""
    path = Path(shipped_setup().command)
    created = not path.exists()
    top = next((folder for folder in reversed(path.parents) if not folder.exists()), None)
    if created and os.geteuid() != 0:
        pytest.skip(f"verify needs {path} to exist; creating it for the check needs root")
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
    yield path
    if created:
        path.unlink()
        if top is not None:
            shutil.rmtree(top)


def verify(paths: list[Path]) -> None:
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, paths)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_shipped_units_are_the_rendered_templates():
    assert {path.name: path.read_text() for path in SHIPPED} == render(shipped_setup())


def test_shipped_units_pass_verify(shipped_executable):
    assert len(SHIPPED) == 6
    verify(SHIPPED)


def test_shipped_services_expose_little(shipped_executable):
    for path in SHIPPED:
        if path.suffix != ".service":
            continue
        result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(path)],
                                capture_output=True, text=True, timeout=120)
        level = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
        assert level and float(level.group(1)) < 4.0, result.stdout[-500:]


def test_install_systemd_dry_run_prints_units_that_verify(home, tmp_path):
    config = home.path / "config.toml"
    config.write_text(f'[library]\npictures = "{home.path}/My Pictures"\n')
    result = home.run("--config", str(config), "install-systemd", "--dry-run", check=True,
                      extra_env={"SUDO_USER": ""})
    units = dict(re.findall(r"# --- would write /etc/systemd/system/(\S+) ---\n(.*?)(?=\n# ---"
                            r" would write|\nwould create)", result.stdout, re.S))
    assert sorted(units) == sorted(render(shipped_setup()))
    service = units["frame-ingest.service"]
    assert f"--config {config} run" in service and "User=" in service
    assert f"'{home.path}/My Pictures'" in service
    assert "would run: systemctl enable --now frame-ingest.timer frame-ingest-resweep.timer" \
        in result.stdout
    assert not (home.path / "My Pictures").exists()  # a dry run creates nothing
    folder = tmp_path / "units"
    folder.mkdir()
    for name, text in units.items():
        (folder / name).write_text(text + "\n")
    verify(sorted(folder.iterdir()))


MDWE_RUNNER = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(65, 1, 0, 0, 0) == 0, "PR_SET_MDWE"   # refuse writable+executable memory
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("W+X memory was allowed")
except OSError:
    pass
from pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_resweep_works_without_writable_executable_memory(home):
    """The kernel's MDWE (inherited by the signing workers) is what the units'
    MemoryDenyWriteExecute= asks for: JPEG, PNG, HEIC decoding and numpy must cope."""
    from tests import images
    from tests.test_resweep import noise_jpeg
    picture = images.photo(41)
    home.pictures.mkdir(parents=True)
    for name, data in {"a.jpg": images.jpeg(picture), "b.png": images.png(picture),
                       "c.heic": images.heic(picture),
                       **{f"n{seed}.jpg": noise_jpeg(seed) for seed in range(16)}}.items():
        (home.pictures / name).write_bytes(data)
    result = subprocess.run([sys.executable, "-c", MDWE_RUNNER, "resweep", "--json"],
                            env=home.env, cwd=home.path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["signed"] == 19 and summary["quarantined"] == 2


def test_install_systemd_enables_the_web_page_only_when_web_is_enabled(home):
    config = home.path / "config.toml"
    for enabled in (False, True):
        config.write_text(f'[web]\nenabled = {"true" if enabled else "false"}\n')
        result = home.run("--config", str(config), "install-systemd", "--dry-run", check=True,
                          extra_env={"SUDO_USER": ""})
        web = re.search(r"# --- would write /etc/systemd/system/frame-ingest-web.service ---\n"
                        r"(.*?)(?=\n# --- would write|\nwould create)", result.stdout, re.S)
        assert web and f"--config {config} serve" in web.group(1)
        assert f"ReadWritePaths=" in web.group(1) and str(home.path) in web.group(1)
        enabling = "would run: systemctl enable --now frame-ingest-web.service"
        assert (enabling in result.stdout) is enabled
        assert ("the web page is installed but not enabled" in result.stdout) is not enabled
