"""Secrets never leak, and secret or config files open to other users are pointed out.

Every command runs at ``-v`` with known secret values (the Dropbox refresh token and the IMAP
password, both from files and both from environment variables; for an OAuth2 mailbox every
device code, access token and refresh token the authorization server issued),
through success and failure paths; the secrets must not appear in stdout, stderr or any
file frame-ingest wrote (the SQLite database and its WAL included), the secret files
themselves excepted. The OAuth2 user code may be shown by `imap-auth` only, and is stored
nowhere.
"""

from __future__ import annotations

import signal
import stat
import subprocess
from pathlib import Path

import pytest

from pipeline.cli import COMMANDS
from tests import images, mails
from tests.imap_helpers import read_text, wait_for
from tests.support import crashes, scenarios
from tests.support.dovecot import DovecotServer
from tests.support.oauth_server import OAuthServer

IMAP_USER, IMAP_PASSWORD = "frame", "Imap-Secret-Value-31337"   # the OAuth2 server's user


@pytest.fixture(scope="module")
def oauth():
    with OAuthServer(interval=0.1) as server:
        yield server


@pytest.fixture(scope="module")
def oauth_dovecot(oauth):
    with DovecotServer(users={IMAP_USER: IMAP_PASSWORD},
                       oauth2_introspection_url=oauth.introspection_url,
                       oauth2_ca_file=oauth.ca_file) as server:
        yield server


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


def sign_in(trial: crashes.Trial, oauth: OAuthServer) -> tuple[str, str]:
    """`imap-auth -v` with the test approving the code it prints; (output, user code)."""
    process = subprocess.Popen(trial.argv("-v", "imap-auth"), env=trial.env(),
                               cwd=trial.home.path, stdin=subprocess.DEVNULL, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "enter the code " in line:
                code = line.split("enter the code ", 1)[1].strip()
                oauth.approve(code, IMAP_USER)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, "".join(lines)
    return "".join(lines), code


def test_no_command_ever_shows_or_stores_an_oauth2_token_or_code(home, oauth, oauth_dovecot):
    oauth_dovecot.append(IMAP_USER, "OAuthSecrets", mails.with_images(
        [("IMG_3.jpg", mails.picture(952))]), create=True)
    trial = crashes.Trial(0, home, [], "run")
    trial.config_path.write_text(
        "[sources.folder]\nenabled = false\n[sources.imap]\nenabled = true\n"
        f'host = "{oauth_dovecot.host}"\nport = {oauth_dovecot.port}\nsecurity = "none"\n'
        f'username = "{IMAP_USER}"\nfolder = "OAuthSecrets"\n'
        f'allowed_senders = ["{mails.FAMILY}"]\nretry_wait_seconds = 0.1\n'
        f'retry_attempts = 2\nauth = "oauth2"\noauth2_provider = "custom"\n'
        f'oauth2_client_id = "frame-test-client"\noauth2_device_url = "{oauth.device_url}"\n'
        f'oauth2_token_url = "{oauth.token_url}"\noauth2_scope = "imap offline_access"\n'
        f'oauth2_ca_file = "{oauth.ca_file}"\n')
    trial.config_path.chmod(0o600)
    env = trial.env()
    signed_in, user_code = sign_in(trial, oauth)
    outputs = [("imap-auth", 0, signed_in)]
    for arguments in commands_to_try():
        result = subprocess.run(trial.argv("-v", *arguments), env=env, cwd=home.path,
                                capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        outputs.append((" ".join(arguments), result.returncode, result.stdout + result.stderr))
    outputs.append(("watch", 0, watch_briefly(trial, env)))
    oauth.expire_access_tokens()                 # the renewal path: refused, then refreshed
    renewed = trial.run("-v", "check")
    outputs.append(("check (renewed)", renewed.returncode, renewed.stdout + renewed.stderr))
    oauth.revoke_refresh_tokens()
    oauth.expire_access_tokens()                 # and the refused grant
    refused = trial.run("-v", "run")
    outputs.append(("run (revoked)", refused.returncode, refused.stdout + refused.stderr))
    codes = {command: code for command, code, _ in outputs}
    assert codes["run"] == 0 and codes["check (renewed)"] == 0 and codes["run (revoked)"] == 1
    assert "frame-ingest imap-auth" in refused.stderr
    assert home.files(home.pictures) == ["IMG_3.jpg"]
    issued = oauth.secrets()
    assert len(issued) >= 5                      # device code, 2+ access and 2+ refresh tokens
    for command, code, output in outputs:
        assert not [secret for secret in issued if secret in output], f"{command} showed a secret"
        assert command == "imap-auth" or user_code not in output, f"{command} showed the code"
        assert "Traceback" not in output, (command, output)
    token_files = {home.state_dir / "imap-oauth2-token",
                   home.state_dir / "imap-oauth2-access-token"}
    for path in written_files(home, token_files):
        data = path.read_bytes()
        assert not [secret for secret in issued if secret.encode() in data], \
            f"a token is stored in {path}"
        assert user_code.encode() not in data, f"the user code is stored in {path}"
    assert (home.state_dir / "imap-oauth2-token").exists()  # the refused access token is gone
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in token_files
               if path.exists())
    assert any(path.name.startswith("store.sqlite3") for path in written_files(home, set()))
