"""`frame-ingest dropbox-auth`: link the frame to a Dropbox account, once.

The OAuth 2 "no redirect" flow with PKCE and offline access: the frame holds no app
secret (anyone with shell access to it could read one); it prints an address, a person
opens it on any device, allows the app and pastes back the code; the frame trades the code
for a refresh token, proves the token works with one API call, and only then writes it
(mode 0600, atomically) so that a failed attempt never replaces a working token. Access
tokens are short-lived and renewed by the SDK from the refresh token on every run.

This module is the conversation with the person and the careful write of the token; the
SDK's flow and every call to Dropbox are in ``dropbox_session`` (``Authorization``,
``Session``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.config import DropboxSourceConfig
from pipeline.errors import PermanentSourceError
from pipeline.sources.dropbox_session import SOURCE, Authorization, Session, token_file
from pipeline.secrets import write_secret_file


def authorize(settings: DropboxSourceConfig, state_dir: Path,
              ask: Callable[[str], str] = input, say: Callable[[str], None] = print) -> Path:
    """Run the flow with a person at ``ask``/``say``; return where the token was written."""
    flow = Authorization(settings)
    say("1. Open this address in a browser and sign in to the Dropbox account that holds "
        "the shared folder:")
    say(flow.address())
    say('2. Click "Allow", copy the code Dropbox shows and paste it here.')
    try:
        code = ask("Code: ").strip()
    except EOFError:
        code = ""
    if not code:
        raise PermanentSourceError("no code entered; nothing was changed", SOURCE)
    refresh_token = flow.refresh_token(code)
    with Session(settings, state_dir, refresh_token=refresh_token) as session:
        email = session.account_email("verify the new token")
    path = token_file(settings, state_dir)
    try:
        write_secret_file(path, refresh_token)
    except OSError as exc:
        raise PermanentSourceError(f"cannot write {path}: {exc.strerror}", SOURCE) from exc
    say(f"Linked to the Dropbox account of {email}; refresh token written to {path} "
        f"(readable by you only).")
    if settings.refresh_token_env:
        say(f"Note: ${settings.refresh_token_env} wins over this file whenever it is set.")
    return path

