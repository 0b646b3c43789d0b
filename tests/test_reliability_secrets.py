"""Secrets never leak, and secret or config files open to other users are pointed out.

Every command runs at ``-v`` with known secret values (the Dropbox refresh token and the IMAP
password, both from files and both from environment variables),
through success and failure paths; the secrets must not appear in stdout, stderr or any
file frame-ingest wrote (the SQLite database and its WAL included), the secret files
themselves excepted.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from pipeline.cli import COMMANDS
from tests import images, mails
from tests.imap_helpers import read_text, wait_for
from tests.support import crashes, scenarios


def commands_to_try() -> list[list[str]]:
    """Every command of the CLI that runs without a person (watch separately, briefly)."""
    commands = [["fetch"], ["run"], ["gate"], ["status"], ["status", "--json"], ["check"],
                ["quarantine", "list"], ["dropbox-auth"]]
    optional = {"resweep": ["resweep"], "review": ["review"],
                "install-systemd": ["install-systemd", "--dry-run"]}
    commands += [arguments for name, arguments in optional.items() if name in COMMANDS]
    return commands


def written_files(home, secret_files: set[Path]) -> list[Path]:
    return [path for path in crashes.files_under(home.path) if path not in secret_files]


def watch_briefly(trial: crashes.Trial, env: dict) -> str:
    """Run `watch -v` until it waits for mail, then stop it with SIGTERM; its output."""
    log_path = trial.home.path / "watch.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(trial.argv("-v", "watch"), env=env, cwd=trial.home.path,
                                   stdout=log_file, stderr=log_file, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: "waiting for new mail" in read_text(log_path)
                 or process.poll() is not None, "watch to start waiting")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = read_text(log_path)
    log_path.unlink()
    return output


@pytest.mark.parametrize("secrets_from", ["file", "env"])
def test_no_command_ever_shows_or_stores_a_secret(home, dropbox, mailbox, secrets_from):
    emulator, token, imap_password = dropbox.emulator, dropbox.token, mailbox.password
    secret_dir = home.path / "secrets"
    secret_dir.mkdir(mode=0o700)
    token_file, password_file = secret_dir / "dropbox-token", secret_dir / "imap-password"
    for path, value in ((token_file, token), (password_file, imap_password)):
        path.write_text(value + "\n")
        path.chmod(0o600)
    dropbox = scenarios.DropboxScenario(emulator, dropbox.app_key, dropbox.folder)
    imap = scenarios.ImapScenario(mailbox.server, mailbox.user, imap_password,
                                  f"Secrets{secrets_from}")
    imap.place(home, [scenarios.Input("IMG_2.jpg", mails.picture(951), "photo")])
    Path(imap.password_file).unlink()           # this test keeps its secrets in secret_dir
    if secrets_from == "file":
        imap.password_file = str(password_file)
        config = dropbox.config() + f'refresh_token_file = "{token_file}"\n' + imap.config()
    else:
        config = dropbox.config() + 'refresh_token_env = "FRAME_TEST_DROPBOX_TOKEN"\n' + \
            imap.config().replace(f'password_file = "{imap.password_file}"',
                                  'password_env = "FRAME_TEST_imap_password"')
    trial = crashes.Trial(0, home, [dropbox, imap], "run")
    trial.config_path.write_text(config)
    trial.config_path.chmod(0o600)
    emulator.put_file(f"{dropbox.folder}/IMG_1.jpg", images.jpeg(images.photo(950)))
    emulator.put_file(f"{dropbox.folder}/IMG_1 copy.jpg", images.jpeg(images.photo(950)))
    env = {**trial.env(), "FRAME_TEST_DROPBOX_TOKEN": token,
           "FRAME_TEST_imap_password": imap_password} if secrets_from == "env" else trial.env()
    outputs = []
    for arguments in commands_to_try():
        result = subprocess.run(trial.argv("-v", *arguments), env=env, cwd=home.path,
                                capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        outputs.append((" ".join(arguments), result.returncode, result.stdout + result.stderr))
    outputs.append(("watch", 0, watch_briefly(trial, env)))
    emulator.revoke_refresh_token(token)        # the failure paths: a refused token and
    refused = subprocess.run(trial.argv("-v", "run"), env=env, cwd=home.path,  # password
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    outputs.append(("run (refused)", refused.returncode, refused.stdout + refused.stderr))
    codes = {command: code for command, code, _ in outputs}
    for command, code, output in outputs:
        assert token not in output and imap_password not in output, f"{command} showed a secret"
        assert "Traceback" not in output, (command, output)
    assert codes["run"] == 0 and codes["dropbox-auth"] == 1 and codes["run (refused)"] == 1
    assert len(home.files(home.pictures)) == 2 and len(home.files(home.quarantine)) == 1
    for path in written_files(home, {token_file, password_file}):
        data = path.read_bytes()
        assert token.encode() not in data and imap_password.encode() not in data, \
            f"a secret is stored in {path}"
    assert any(path.name.startswith("store.sqlite3") for path in written_files(home, set()))


def test_a_token_file_open_to_others_gets_one_warning_naming_it(home, dropbox):
    scenario = scenarios.DropboxScenario(dropbox.emulator, dropbox.app_key, dropbox.folder)
    scenario.place(home, [])
    token = scenario.token
    token_file = home.state_dir / "dropbox-refresh-token"
    trial = crashes.Trial(0, home, [scenario], "run")
    trial.config_path.write_text(scenario.config())
    trial.config_path.chmod(0o600)
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


def test_an_imap_password_file_open_to_others_gets_one_warning_naming_it(home, mailbox):
    imap_password = mailbox.password
    imap = scenarios.ImapScenario(mailbox.server, mailbox.user, imap_password, "SecretsOpen")
    imap.place(home, [])
    trial = crashes.Trial(0, home, [imap], "run")
    trial.config_path.write_text("[sources.folder]\nenabled = false\n" + imap.config())
    trial.config_path.chmod(0o600)
    Path(imap.password_file).chmod(0o640)
    result = trial.run("-v", "run")
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "chmod 600" in line] == [
        f"WARNING the IMAP password_file {imap.password_file} can be read or changed by other "
        f"users (mode 640); run: chmod 600 {imap.password_file}"]
    assert imap_password not in result.stderr + result.stdout
