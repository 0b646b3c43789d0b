"""`frame-ingest imap-auth`: sign the frame in to an OAuth2 mailbox, once (RFC 8628).

The device code flow, because a Pi on the wall has no screen or browser: the frame asks the
provider for a code, prints an address and the code, and a person opens the address on a
phone, types the code, signs in to the frame's mailbox and allows access. Meanwhile the
frame polls the token endpoint at the interval the provider asked for (five seconds more
after each ``slow_down``) until it answers with tokens, or says the person declined
(``access_denied``) or the code expired (``expired_token``).

Before anything is written, the new access token must open the mailbox (one IMAP login):
a sign-in to the wrong account, or to one without IMAP, changes nothing, and a working
token file is never replaced by a useless one. Then the refresh token goes to
``oauth2_token_file`` (mode 0600, atomically). The user code is printed here only and
stored nowhere; the device code and the tokens are never printed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from oauthlib.oauth2 import OAuth2Error

from pipeline.config import ImapSourceConfig
from pipeline.errors import (ConfigError, PermanentSourceError, SourceError,
                             TransientSourceError)
from pipeline.sources.imap import endpoint_for
from pipeline.sources.imap_oauth import AccessToken, Provider, Tokens
from pipeline.sources.imap_session import (SOURCE, BearerToken, Endpoint, LoginRefused,
                                           open_session)

DECLINED = ("access_denied", "authorization_declined")     # RFC 8628; Microsoft's word
AGAIN = "run `frame-ingest imap-auth` again"
SLOW_DOWN_STEP = 5.0    # RFC 8628 section 3.5


@dataclass(frozen=True)
class DeviceCode:
    """The provider's answer to the device authorization request (RFC 8628 section 3.2)."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: float
    interval: float


def authorize(settings: ImapSourceConfig, state_dir: Path, config_label: str,
              say: Callable[[str], None] = print,
              sleep: Callable[[float], None] = time.sleep) -> Path:
    """Run the flow with a person reading ``say``; return where the token was written."""
    if settings.auth != "oauth2":
        raise ConfigError(f'{config_label}: [sources.imap] auth: imap-auth signs in with '
                          f'OAuth2; set auth = "oauth2" (docs/imap.md)')
    problems = [f"{config_label}: [sources.imap] {key}: {message}"     # enabled or not
                for key, message in settings.auth_rules()]
    if not settings.username:
        problems.append(f"{config_label}: [sources.imap] username: empty")
    if problems:
        raise ConfigError(problems)
    tokens = Tokens(settings, state_dir)
    code = request_device_code(tokens)
    say(f"To let the frame read {settings.username}, open this address on a phone or "
        "computer:")
    say(f"    {code.verification_uri}")
    say(f"and enter the code {code.user_code}")
    if code.verification_uri_complete:
        say(f"(or open {code.verification_uri_complete}, which fills in the code)")
    say(f"Then sign in as {settings.username} and allow access. Waiting (the code expires "
        f"in {code.expires_in / 60:.0f} minutes)...")
    answer = wait_for_sign_in(tokens, code, say, sleep)
    refresh_token = answer.get("refresh_token")
    if not refresh_token:
        raise PermanentSourceError("the provider signed you in but sent no refresh token: "
                                   "the scope must include offline_access (Microsoft) or "
                                   "its equivalent; nothing was saved", SOURCE)
    access = AccessToken.from_response(answer)
    endpoint = endpoint_for(settings)
    method = first_login(endpoint, access)
    tokens.save_grant(refresh_token, access)
    say(f"Signed in: {endpoint.host} accepted the new access token for {settings.username} "
        f"({method}). Refresh token written to {tokens.token_file} (readable by you only).")
    return tokens.token_file


def first_login(endpoint: Endpoint, access: AccessToken) -> str:
    """Log in once with the new access token; the SASL mechanism it took."""
    try:
        with open_session(endpoint, BearerToken(access.value)) as session:
            return session.login_method
    except LoginRefused:
        raise PermanentSourceError(
            f"IMAP login: {endpoint.host}:{endpoint.port} refused the new access token for "
            f"{endpoint.username}: sign in as that mailbox (not another account) and check "
            f"that IMAP is on for it; nothing was saved; {AGAIN}", SOURCE) from None
    except SourceError as exc:
        raise PermanentSourceError(f"{exc}; the sign-in worked but this first login did "
                                   f"not, so nothing was saved; {AGAIN}", SOURCE) from None


def request_device_code(tokens: Tokens) -> DeviceCode:
    """POST client_id and scope to the device authorization endpoint (RFC 8628 3.1)."""
    provider = tokens.provider
    http = tokens.http
    verify = http.verify
    with http.session(provider.client_id) as session, \
            http.translated(provider, "start the sign-in"):
        response = session.post(provider.device_url,
                                data={"client_id": provider.client_id, "scope": provider.scope},
                                headers={"Accept": "application/json"}, timeout=http.timeout,
                                verify=verify, withhold_token=True)
    try:
        data = response.json()
    except ValueError:
        data = {}
    if response.status_code != 200 or not isinstance(data, dict) or "device_code" not in data:
        raise PermanentSourceError(refusal(provider, response.status_code, data), SOURCE)
    return DeviceCode(str(data["device_code"]), str(data["user_code"]),
                      str(data.get("verification_uri") or data.get("verification_url", "")),
                      str(data.get("verification_uri_complete", "")),
                      float(data.get("expires_in", 900)), float(data.get("interval", 5)))


def refusal(provider: Provider, status: int, data: object) -> str:
    """Why the device authorization request failed, without echoing anything secret."""
    error = description = ""
    if isinstance(data, dict):
        error = str(data.get("error", ""))
        lines = str(data.get("error_description", "")).strip().splitlines()
        description = lines[0] if lines else ""
    detail = f"{error}: {description}" if description else error or f"HTTP {status}"
    return (f"OAuth2 device authorization: {provider.host} refused to start the sign-in "
            f"({detail}); check oauth2_client_id, oauth2_tenant and that the app registration "
            "allows public client flows")


def wait_for_sign_in(tokens: Tokens, code: DeviceCode, say: Callable[[str], None],
                     sleep: Callable[[float], None]) -> dict:
    """Poll the token endpoint (RFC 8628 3.4, 3.5) until the person has answered."""
    with tokens.http.session(tokens.provider.client_id) as session:
        return poll(session, tokens, code, say, sleep)


def poll(session, tokens: Tokens, code: DeviceCode, say: Callable[[str], None],
         sleep: Callable[[float], None]) -> dict:
    provider = tokens.provider
    verify = tokens.http.verify
    interval = code.interval
    deadline = time.monotonic() + code.expires_in
    trouble = ""            # the last network problem said, so an outage is said once
    while True:
        sleep(interval)
        try:
            with tokens.http.translated(provider, "finish the sign-in"):
                try:
                    return session.fetch_token(provider.token_url,
                                               device_code=code.device_code,
                                               include_client_id=True,
                                               timeout=tokens.http.timeout, verify=verify)
                except OAuth2Error as exc:
                    trouble = ""
                    if exc.error == "authorization_pending":
                        pass
                    elif exc.error == "slow_down":
                        interval += SLOW_DOWN_STEP
                        say(f"The provider asked the frame to ask less often; now every "
                            f"{interval:g} s.")
                    else:
                        raise SignInEnded(exc) from None
        except SignInEnded as ended:
            raise PermanentSourceError(ended.message(), SOURCE) from None
        except TransientSourceError as exc:     # a person is waiting: keep going
            if str(exc) != trouble:
                say(f"{exc}; asking again.")
            trouble = str(exc)
        if time.monotonic() > deadline:
            raise PermanentSourceError(f"the code expired before the sign-in was finished; "
                                       f"nothing was saved; {AGAIN}", SOURCE)


class SignInEnded(Exception):
    """The token endpoint gave a final answer other than tokens."""

    def __init__(self, exc: OAuth2Error):
        super().__init__(exc.error)
        self.error = exc.error
        self.description = (exc.description or "").strip()

    def message(self) -> str:
        if self.error in DECLINED:
            return f"the sign-in was declined on the phone; nothing was saved; {AGAIN}"
        if self.error == "expired_token":
            return f"the code expired before the sign-in was finished; nothing was saved; {AGAIN}"
        detail = f"{self.error}: {self.description}" if self.description else self.error
        return f"the sign-in failed ({detail}); nothing was saved; {AGAIN}"
