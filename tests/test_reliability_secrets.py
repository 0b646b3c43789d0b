"""Secrets never leak, and secret or config files open to other users are pointed out.

Every command runs at ``-v`` with known secret values (the Dropbox refresh token from a file
and from an environment variable, the IMAP password likewise once the IMAP source exists),
through success and failure paths; the secrets must not appear in stdout, stderr or any
file frame-ingest wrote (the SQLite database and its WAL included), the secret files
themselves excepted.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.cli import COMMANDS
from tests import images
from tests.support import crashes
from tests.support.dropbox_emulator import DropboxEmulator

APP_KEY = "frame-ingest-secrets-test"


@pytest.fixture(scope="module")
def emulator():
    with DropboxEmulator() as emu:
        yield emu


def commands_to_try() -> list[list[str]]:
    """Every command of the CLI that runs without a person (watch only briefly)."""
    commands = [["fetch"], ["run"], ["gate"], ["status"], ["status", "--json"], ["check"],
                ["quarantine", "list"], ["dropbox-auth"]]
    if "resweep" in COMMANDS:
        commands.append(["resweep"])
    return commands


def written_files(home, secret_files: set[Path]) -> list[Path]:
    return [path for path in crashes.files_under(home.path) if path not in secret_files]


@pytest.mark.parametrize("token_from", ["file", "env"])
def test_no_command_ever_shows_or_stores_a_secret(home, emulator, token_from):
    token = emulator.add_refresh_token(APP_KEY)
    secret_dir = home.path / "secrets"
    secret_dir.mkdir(mode=0o700)
    token_file = secret_dir / "dropbox-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    scenario = crashes.DropboxScenario(emulator, APP_KEY, f"/Secrets {token_from}")
    config = scenario.config() + (f'refresh_token_file = "{token_file}"\n' if token_from == "file"
                                  else 'refresh_token_env = "FRAME_TEST_DROPBOX_TOKEN"\n')
    trial = crashes.Trial(0, home, [scenario], "run")
    trial.config_path.write_text(config)
    trial.config_path.chmod(0o600)
    emulator.put_file(f"{scenario.folder}/IMG_1.jpg", images.jpeg(images.photo(950)))
    emulator.put_file(f"{scenario.folder}/IMG_1 copy.jpg", images.jpeg(images.photo(950)))
    extra = {"FRAME_TEST_DROPBOX_TOKEN": token} if token_from == "env" else {}
    outputs = []
    for arguments in commands_to_try():
        result = subprocess.run(trial.argv("-v", *arguments), env={**trial.env(), **extra},
                                cwd=home.path, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        outputs.append((arguments, result.returncode, result.stdout + result.stderr))
    emulator.revoke_refresh_token(token)        # the failure path of a refused token
    refused = subprocess.run(trial.argv("-v", "run"), env={**trial.env(), **extra},
                             cwd=home.path, capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    outputs.append((["run (refused)"], refused.returncode, refused.stdout + refused.stderr))
    for arguments, code, output in outputs:
        assert token not in output, f"{arguments} showed the token"
        assert "Traceback" not in output, (arguments, output)
    assert dict((tuple(a), code) for a, code, _ in outputs)[("run",)] == 0
    assert dict((tuple(a), code) for a, code, _ in outputs)[("dropbox-auth",)] == 1
    assert len(home.files(home.pictures)) == 1 and len(home.files(home.quarantine)) == 1
    for path in written_files(home, {token_file}):
        assert token.encode() not in path.read_bytes(), f"the token is stored in {path}"
    assert any(path.name.startswith("store.sqlite3") for path in written_files(home, set()))


def test_a_token_file_open_to_others_gets_one_warning_naming_it(home, emulator):
    token = emulator.add_refresh_token(APP_KEY)
    scenario = crashes.DropboxScenario(emulator, APP_KEY, "/Secrets open")
    scenario.place(home, [])
    token_file = home.state_dir / "dropbox-refresh-token"
    trial = crashes.Trial(0, home, [scenario], "run")
    trial.config_path.write_text(scenario.config())
    trial.config_path.chmod(0o600)
    emulator.make_folder(scenario.folder)
    token_file.chmod(0o600)
    quiet = trial.run("check")
    assert quiet.returncode == 0 and "chmod" not in quiet.stdout + quiet.stderr
    token_file.chmod(0o644)
    warned = trial.run("check")
    lines = [line for line in warned.stderr.splitlines() if "chmod 600" in line]
    assert lines == [f"WARNING the Dropbox refresh token file {token_file} can be read or "
                     f"changed by other users (mode 644); run: chmod 600 {token_file}"]
    assert token not in warned.stdout + warned.stderr


def test_a_config_file_open_to_others_gets_one_warning_naming_it(home):
    config = home.path / "frame-ingest.toml"
    config.write_text("[sources.folder]\nsettle_seconds = 0\n")
    config.chmod(0o600)
    quiet = home.run("--config", str(config), "status")
    assert "chmod" not in quiet.stderr
    config.chmod(0o664)
    warned = home.run("--config", str(config), "status")
    assert warned.returncode == 0
    assert [line for line in warned.stderr.splitlines() if "chmod 600" in line] == [
        f"WARNING the configuration file {config} can be read or changed by other users "
        f"(mode 664); run: chmod 600 {config}"]
