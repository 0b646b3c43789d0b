"""OAuth2 mailboxes end to end: `imap-auth`'s device code sign-in, then check, run and watch
logging in with XOAUTH2/OAUTHBEARER, against a real Dovecot that asks a local HTTPS
authorization server (tests/support/oauth_server.py) about every token. The test plays the
person with the phone: it reads the code frame-ingest prints and approves it on the server.
"""

from __future__ import annotations

import contextlib
import stat
import subprocess
import sys
import threading
from pathlib import Path

import certifi
import pytest

from pipeline.config import parse_config
from pipeline.errors import ConfigError
from pipeline.sources.imap_oauth import provider_for
from tests import mails
from tests.imap_helpers import toml_value, wait_for
from tests.support.dovecot import DovecotServer
from tests.support.oauth_server import OAuthServer

USER = "frame"
CLIENT_ID = "frame-test-client"


@pytest.fixture(scope="module")
def auth():
    with OAuthServer(interval=0.1) as server:
        yield server


@pytest.fixture(scope="module")
def dovecot(auth):
    with DovecotServer(users={USER: "unused-password"},
                       oauth2_introspection_url=auth.introspection_url,
                       oauth2_ca_file=auth.ca_file) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_faults(auth):
    """Each test starts with a provider that behaves."""
    auth.access_lifetime, auth.slow_down_answers, auth.token_endpoint_status = 3600.0, 0, 0
    auth.denial_error, auth.offer_complete_uri = "access_denied", True
    yield


def oauth_config(home, dovecot, oauth, folder: str, name: str = "config.toml", **keys) -> str:
    """A config with only the IMAP source on, signing in to ``oauth`` as a custom provider."""
    settings = {"enabled": True, "host": dovecot.host, "port": dovecot.port,
                "security": "none", "username": USER, "folder": folder,
                "processed_folder": f"processed/{folder}", "allowed_senders": [mails.FAMILY],
                "retry_wait_seconds": 0.1, "retry_attempts": 2, "timeout_seconds": 10.0,
                "auth": "oauth2", "oauth2_provider": "custom",
                "oauth2_client_id": CLIENT_ID, "oauth2_device_url": oauth.device_url,
                "oauth2_token_url": oauth.token_url, "oauth2_scope": "imap offline_access",
                "oauth2_ca_file": oauth.ca_file}
    settings.update(keys)
    lines = ["[sources.folder]", "enabled = false", "", "[sources.imap]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in settings.items()
              if value is not None]
    path = home.path / name
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return str(path)


def signed_in(home, auth, username: str = USER) -> Path:
    """A token file as `imap-auth` leaves it, for a grant made on the server directly."""
    token_file = home.state_dir / "imap-oauth2-token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(auth.grant(username, CLIENT_ID) + "\n")
    token_file.chmod(0o600)
    return token_file


def photo_mail(dovecot, folder: str, name: str, seed: int) -> None:
    dovecot.append(USER, folder, mails.with_images([(name, mails.picture(seed))]), create=True)


class Running:
    """frame-ingest in the background, its stdout and stderr collected line by line."""

    def __init__(self, home, config: str, *arguments: str, extra_env: dict | None = None):
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "--config", config, *arguments],
            env=dict(home.env, **(extra_env or {})), cwd=home.path, text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def line_with(self, text: str) -> str:
        return wait_for(lambda: next((line for line in self.lines if text in line), None)
                        or (self.process.poll() is not None and self.reader.join(5)),
                        f"a line with {text!r}") or ""

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(10)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.reader.join(10)


@contextlib.contextmanager
def running(home, config: str, *arguments: str, **options):
    child = Running(home, config, *arguments, **options)
    try:
        yield child
    finally:
        child.stop()


def user_code(child: Running) -> str:
    line = child.line_with("enter the code ")
    assert line, child.output
    return line.split("enter the code ", 1)[1].strip()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------------ the test servers


def test_dovecot_takes_only_tokens_the_authorization_server_vouches_for(auth, dovecot):
    from imapclient import IMAPClient
    from imapclient.exceptions import LoginError
    status, tokens = auth.dispatch("/token", {"grant_type": "refresh_token",
                                              "refresh_token": auth.grant(USER, CLIENT_ID),
                                              "client_id": CLIENT_ID})
    assert status == 200
    for login in ("oauth2_login", "oauthbearer_login"):
        client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
        assert getattr(client, login)(USER, tokens["access_token"])
        client.logout()
    auth.expire_access_tokens()
    client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
    with pytest.raises(LoginError):
        client.oauth2_login(USER, tokens["access_token"])
    client.shutdown()


# ------------------------------------------------------------------------------ imap-auth


def test_imap_auth_prints_the_address_and_code_and_saves_the_token_after_one_imap_login(
        home, auth, dovecot):
    config = oauth_config(home, dovecot, auth, "INBOX")
    with running(home, config, "imap-auth") as child:
        code = user_code(child)
        request = auth.device_request(code)
        wait_for(lambda: len(request.polls) >= 2, "the frame to poll (authorization_pending)")
        introspections = len(auth.introspections)
        auth.approve(code, USER)
        assert child.finish() == 0, child.output
    output = child.output
    assert f"    {auth.verification_uri}" in output.splitlines()
    assert f"{auth.verification_uri}?code={code}" in output          # the complete address
    assert "Signed in" in output and "(XOAUTH2)" in output
    assert auth.introspections[introspections:] == [True]   # one IMAP login, before saving
    token_file = home.state_dir / "imap-oauth2-token"
    assert mode(token_file) == 0o600 and mode(home.state_dir / "imap-oauth2-access-token") == 0o600
    assert token_file.read_text().strip() in auth.live_refresh_tokens()
    gaps = [later - earlier for earlier, later in zip(request.polls, request.polls[1:])]
    assert gaps and min(gaps) >= auth.interval * 0.9        # the provider's interval, honoured
    assert not any(secret in output for secret in auth.secrets())
    checked = home.run("--config", config, "check")
    assert checked.returncode == 0 and "with OAuth2 (XOAUTH2)" in checked.stdout, checked.stdout


def test_imap_auth_polls_five_seconds_slower_after_slow_down(home, auth, dovecot):
    config = oauth_config(home, dovecot, auth, "INBOX")
    auth.slow_down_answers, auth.offer_complete_uri = 1, False
    with running(home, config, "imap-auth") as child:
        code = user_code(child)
        slowed = child.line_with("less often")
        request = auth.device_request(code)
        polls_then = len(request.polls)
        auth.approve(code, USER)
        assert child.finish() == 0, child.output
    assert "now every 5.1 s" in slowed
    assert "(or open" not in child.output         # this provider gave no complete address
    assert request.polls[polls_then] - request.polls[polls_then - 1] >= 5.0
    assert "slow_down" not in child.output.replace("less often", "")


@pytest.mark.parametrize("answer", ["access_denied", "authorization_declined", "expired_token"])
def test_imap_auth_ends_with_one_clear_line_when_the_sign_in_does_not_happen(
        home, auth, dovecot, answer):
    config = oauth_config(home, dovecot, auth, "INBOX")
    with running(home, config, "imap-auth") as child:
        code = user_code(child)
        if answer == "expired_token":
            auth.expire(code)
        else:
            auth.denial_error = answer
            auth.deny(code)
        assert child.finish() == 1
    errors = [line for line in child.lines if line.startswith("error:")]
    expected = "expired" if answer == "expired_token" else "declined on the phone"
    assert len(errors) == 1 and expected in errors[0] and "nothing was saved" in errors[0]
    assert "Traceback" not in child.output
    assert not (home.state_dir / "imap-oauth2-token").exists()


def test_imap_auth_keeps_the_old_token_when_the_mailbox_refuses_the_new_one(
        home, auth, dovecot):
    config = oauth_config(home, dovecot, auth, "INBOX")
    token_file = signed_in(home, auth)
    before = token_file.read_text()
    with running(home, config, "imap-auth") as child:
        auth.approve(user_code(child), "somebody-else")       # signed in to another account
        assert child.finish() == 1
    errors = [line for line in child.lines if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: IMAP login: ")
    assert "refused the new access token" in errors[0] and "nothing was saved" in errors[0]
    assert token_file.read_text() == before


def test_imap_auth_keeps_waiting_through_an_unavailable_token_endpoint(home, auth, dovecot):
    config = oauth_config(home, dovecot, auth, "INBOX")
    with running(home, config, "imap-auth") as child:
        code = user_code(child)
        auth.token_endpoint_status = 503
        asked = child.line_with("asking again")
        calls = auth.count("/token")
        wait_for(lambda: auth.count("/token") >= calls + 3, "more polls during the outage")
        auth.token_endpoint_status = 0
        auth.approve(code, USER)
        assert child.finish() == 0, child.output
    assert "answered HTTP 503" in asked
    assert sum("asking again" in line for line in child.lines) == 1     # said once
    assert (home.state_dir / "imap-oauth2-token").read_text().strip() in \
        auth.live_refresh_tokens()


def test_imap_auth_needs_auth_oauth2(home, auth, dovecot):
    config = oauth_config(home, dovecot, auth, "INBOX", auth="password",
                          password_env="FRAME_TEST_PASSWORD")
    result = home.run("--config", config, "imap-auth")
    assert result.returncode == 2
    assert result.stderr.strip() == (f'error: {config}: [sources.imap] auth: imap-auth signs in '
                                     f'with OAuth2; set auth = "oauth2" (docs/imap.md)')


# --------------------------------------------------------------------------- check and run


def test_check_names_the_step_that_fails(home, auth, dovecot):
    config = oauth_config(home, dovecot, auth, "INBOX")
    never = home.run("--config", config, "check")
    assert never.returncode == 1
    assert "imap: FAILED: OAuth2 grant: nobody has signed in yet" in never.stdout
    assert "`frame-ingest imap-auth`" in never.stdout
    signed_in(home, auth)
    auth.token_endpoint_status = 503
    down = home.run("--config", config, "check")
    assert down.returncode == 1 and "FAILED: OAuth2 token endpoint: 127.0.0.1:" in down.stdout
    assert "answered HTTP 503" in down.stdout
    auth.token_endpoint_status = 0
    wrong_user = oauth_config(home, dovecot, auth, "INBOX", name="other.toml",
                              username="somebody-else")
    refused = home.run("--config", wrong_user, "check")
    assert refused.returncode == 1 and "FAILED: IMAP login: " in refused.stdout, refused.stdout
    auth.revoke_refresh_tokens()
    revoked = home.run("--config", config, "check")
    assert revoked.returncode == 1
    assert "FAILED: OAuth2 grant: 127.0.0.1:" in revoked.stdout
    assert "refused the sign-in" in revoked.stdout and "frame-ingest imap-auth" in revoked.stdout
    for result in (never, down, refused, revoked):
        assert not any(secret in result.stdout + result.stderr for secret in auth.secrets())


def test_run_takes_photos_with_oauth2_and_keeps_the_rotated_refresh_token(home, auth, dovecot):
    photo_mail(dovecot, "rotated", "first.jpg", 701)
    config = oauth_config(home, dovecot, auth, "rotated")
    token_file = signed_in(home, auth)
    first_token = token_file.read_text().strip()
    refreshes = auth.count("/token", "refresh_token")
    result = home.run("--config", config, "run")
    assert result.returncode == 0, result.stderr
    assert home.files(home.pictures) == ["first.jpg"]
    assert auth.count("/token", "refresh_token") == refreshes + 1
    rotated = token_file.read_text().strip()
    assert rotated != first_token and rotated in auth.live_refresh_tokens()
    assert first_token not in auth.live_refresh_tokens()
    assert mode(token_file) == 0o600
    photo_mail(dovecot, "rotated", "second.jpg", 702)
    again = home.run("--config", config, "run")      # the cached access token is still good
    assert again.returncode == 0 and home.files(home.pictures) == ["first.jpg", "second.jpg"]
    assert auth.count("/token", "refresh_token") == refreshes + 1


def test_run_with_a_revoked_grant_fails_and_names_imap_auth(home, auth, dovecot):
    photo_mail(dovecot, "revoked", "kept.jpg", 703)
    config = oauth_config(home, dovecot, auth, "revoked")
    signed_in(home, auth)
    auth.revoke_refresh_tokens()
    result = home.run("--config", config, "run")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "refused the sign-in" in errors[0]
    assert "run `frame-ingest imap-auth`" in errors[0]
    assert dovecot.uids(USER, "revoked") and home.files(home.pictures) == []


def test_a_server_offering_only_oauthbearer_gets_oauthbearer(home, auth):
    with DovecotServer(users={USER: "unused-password"}, oauth2_mechanisms="oauthbearer",
                       oauth2_introspection_url=auth.introspection_url,
                       oauth2_ca_file=auth.ca_file) as bearer_only:
        photo_mail(bearer_only, "bearer", "bearer.jpg", 704)
        config = oauth_config(home, bearer_only, auth, "bearer")
        signed_in(home, auth)
        checked = home.run("--config", config, "check")
        assert "with OAuth2 (OAUTHBEARER)" in checked.stdout, checked.stdout + checked.stderr
        result = home.run("--config", config, "run")
        assert result.returncode == 0 and home.files(home.pictures) == ["bearer.jpg"]
        assert "method=OAUTHBEARER" in bearer_only.log()


def test_token_calls_trust_requests_ca_bundle_and_oauth2_ca_file_wins(home, auth, dovecot):
    signed_in(home, auth)
    from_env = oauth_config(home, dovecot, auth, "INBOX", name="env.toml", oauth2_ca_file=None)
    trusted = home.run("--config", from_env, "check",
                       extra_env={"REQUESTS_CA_BUNDLE": auth.ca_file})
    assert trusted.returncode == 0, trusted.stdout
    cache = home.state_dir / "imap-oauth2-access-token"
    cache.unlink()                  # so that every check below calls the token endpoint
    untrusted = home.run("--config", from_env, "check",
                         extra_env={"REQUESTS_CA_BUNDLE": certifi.where()})
    assert untrusted.returncode == 1
    assert "TLS certificate not trusted" in untrusted.stdout
    assert "oauth2_ca_file" in untrusted.stdout
    assert not cache.exists()
    configured = oauth_config(home, dovecot, auth, "INBOX", name="file.toml")
    wins = home.run("--config", configured, "check",
                    extra_env={"REQUESTS_CA_BUNDLE": certifi.where()})
    assert wins.returncode == 0, wins.stdout


# --------------------------------------------------------------------------------- watch


def test_watch_logs_in_again_with_a_new_token_before_the_old_one_expires(home, auth, dovecot):
    auth.access_lifetime = 4.0
    dovecot.create_folder(USER, "renewed")
    config = oauth_config(home, dovecot, auth, "renewed", idle_seconds=600.0)
    signed_in(home, auth)
    refreshes = auth.count("/token", "refresh_token")
    with running(home, config, "-v", "watch") as child:
        child.line_with("watch: waiting for new mail")
        child.line_with("logging in again with a new one")
        wait_for(lambda: auth.count("/token", "refresh_token") >= refreshes + 2,
                 "a second access token")
        photo_mail(dovecot, "renewed", "renewed.jpg", 705)
        wait_for(lambda: home.files(home.pictures) == ["renewed.jpg"], "the photo to be filed")
        assert child.process.poll() is None, child.output
    assert "Traceback" not in child.output
    assert not any(secret in child.output for secret in auth.secrets())


def test_watch_gets_a_new_token_when_the_server_stops_taking_the_old_one(home, auth, dovecot):
    dovecot.create_folder(USER, "expired")
    config = oauth_config(home, dovecot, auth, "expired", idle_seconds=600.0)
    signed_in(home, auth)
    with running(home, config, "watch") as child:
        child.line_with("watch: waiting for new mail")
        auth.expire_access_tokens()                 # long before the expiry it announced
        photo_mail(dovecot, "expired", "expired.jpg", 706)
        wait_for(lambda: home.files(home.pictures) == ["expired.jpg"], "the photo to be filed")
        assert child.process.poll() is None, child.output
    assert "refused the cached OAuth2 access token; getting a new one" in child.output


def test_watch_with_a_revoked_grant_stops_with_exit_1_naming_imap_auth(home, auth, dovecot):
    auth.access_lifetime = 4.0
    dovecot.create_folder(USER, "withdrawn")
    config = oauth_config(home, dovecot, auth, "withdrawn", idle_seconds=600.0)
    signed_in(home, auth)
    with running(home, config, "watch") as child:
        child.line_with("watch: waiting for new mail")
        auth.revoke_refresh_tokens()
        assert child.finish(timeout=60) == 1
    errors = [line for line in child.lines if line.startswith("error:")]
    assert len(errors) == 1 and "OAuth2 grant:" in errors[0], child.output
    assert errors[0].endswith("run `frame-ingest imap-auth`")


def test_watch_before_any_sign_in_stops_with_exit_1_naming_imap_auth(home, auth, dovecot):
    config = oauth_config(home, dovecot, auth, "INBOX")
    result = home.run("--config", config, "watch", timeout=60)
    assert result.returncode == 1
    assert "error: OAuth2 grant: nobody has signed in yet" in result.stderr
    assert "run `frame-ingest imap-auth`" in result.stderr


# -------------------------------------------------------------------------------- config


def imap_table(**keys) -> dict:
    base = {"enabled": True, "username": USER, "allowed_senders": [mails.FAMILY],
            "auth": "oauth2", "oauth2_client_id": CLIENT_ID}
    base.update(keys)
    return {"sources": {"imap": {key: value for key, value in base.items() if value is not None}}}


def problems(**keys) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(imap_table(**keys), "frame.toml")
    return raised.value.problems


def test_the_microsoft_preset_fills_endpoints_and_scope_from_the_tenant():
    for tenant in ("consumers", "organizations", "contoso.onmicrosoft.com"):
        provider = provider_for(parse_config(imap_table(oauth2_tenant=tenant)).imap)
        base = f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
        assert (provider.device_url, provider.token_url) == (f"{base}/devicecode",
                                                             f"{base}/token")
        assert provider.scope == ("https://outlook.office.com/IMAP.AccessAsUser.All "
                                  "offline_access")
    assert parse_config(imap_table(auth=None, oauth2_client_id=None,
                                   password_env="PW")).imap.auth == "password"


def test_oauth2_settings_are_checked_when_the_config_is_read():
    assert problems(oauth2_client_id="", password_file="~/pw", oauth2_tenant="a/b") == [
        'frame.toml: [sources.imap] password_file: not used with auth = "oauth2" (the mailbox '
        'is opened with a token from `frame-ingest imap-auth`); remove it',
        "frame.toml: [sources.imap] oauth2_client_id: empty; put the application (client) id "
        "of your app registration here (docs/imap.md)",
        'frame.toml: [sources.imap] oauth2_tenant: expected "consumers" (Outlook.com), '
        '"organizations" or a tenant id or domain (Microsoft 365), got "a/b"']
    assert problems(oauth2_provider="custom", oauth2_device_url="http://x/device") == [
        'frame.toml: [sources.imap] oauth2_device_url: expected an https:// address '
        '(oauth2_provider = "custom"), got "http://x/device"',
        'frame.toml: [sources.imap] oauth2_token_url: expected an https:// address '
        '(oauth2_provider = "custom"), got ""',
        'frame.toml: [sources.imap] oauth2_scope: empty; with oauth2_provider = "custom" say '
        'which scope gives IMAP access (and a refresh token)']
    assert problems(oauth2_token_url="https://x/token") == [
        'frame.toml: [sources.imap] oauth2_token_url: only used with oauth2_provider = '
        '"custom"']
    assert problems(auth="kerberos")[0].startswith(
        'frame.toml: [sources.imap] auth: expected one of "password", "oauth2"')


def test_with_oauth2_no_password_is_needed_and_a_bad_key_exits_2(home, auth, dovecot):
    config = oauth_config(home, dovecot, auth, "INBOX", oauth2_client_id="")
    result = home.run("--config", config, "check")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {config}: [sources.imap] oauth2_client_id: empty; put the application "
        "(client) id of your app registration here (docs/imap.md)")


def test_imap_auth_checks_the_oauth2_keys_of_a_source_not_yet_enabled(home, auth, dovecot):
    config = oauth_config(home, dovecot, auth, "INBOX", enabled=False, oauth2_client_id="")
    assert home.run("--config", config, "status").returncode == 0     # disabled: unchecked
    result = home.run("--config", config, "imap-auth")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {config}: [sources.imap] oauth2_client_id: empty; put the application "
        "(client) id of your app registration here (docs/imap.md)")
