"""The web page's password: set by `frame-ingest web-password`, checked at each login.

Only a salted, memory-hard hash is kept, in ``state_dir/web-password`` (mode 0600, written
atomically by ``secrets.write_secret_file``), in a form that names its algorithm and its
parameters: ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (salt and hash in unpadded base64). scrypt
comes with Python's hashlib (OpenSSL), so a Pi needs no extra wheel for it; n = 2**14 and
r = 8 cost 16 MiB and about 0.1 s on a Pi 3 per check, which is what slows a guesser.
A stored hash with other parameters still verifies (they are read from the string), so the
cost can be raised later without making anyone set the password again.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import secrets as random
import sys
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.secrets import write_secret_file

FILE_NAME = "web-password"
N, R, P = 2 ** 14, 8, 1
MIN_LENGTH = 8
_MAX_MEMORY = 256 * 1024 * 1024     # what a (hostile) stored string may make us allocate


def password_file(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``password`` with a fresh 16-byte salt."""
    salt = random.token_bytes(16)
    digest = _scrypt(password, salt, N, R, P)
    return "$".join(["scrypt", str(N), str(R), str(P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (constant-time compare)."""
    try:
        name, n, r, p, salt, digest = stored.strip().split("$")
        n, r, p = int(n), int(r), int(p)
        salt_bytes, expected = _unb64(salt), _unb64(digest)
    except ValueError:
        return False
    if name != "scrypt" or 128 * n * r * p > _MAX_MEMORY:
        return False
    try:
        actual = _scrypt(password, salt_bytes, n, r, p, len(expected))
    except ValueError:          # parameters scrypt refuses (n not a power of 2, ...)
        return False
    return hmac.compare_digest(actual, expected)


def read_hash(state_dir: Path) -> str | None:
    """The stored hash, or None when no password was set."""
    try:
        text = password_file(state_dir).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{password_file(state_dir)}: cannot read: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
    return text if text.startswith("scrypt$") else None


def set_password(state_dir: Path, password: str) -> Path:
    if len(password) < MIN_LENGTH:
        raise PipelineError(f"the password is too short: use at least {MIN_LENGTH} characters")
    path = password_file(state_dir)
    try:
        write_secret_file(path, hash_password(password))
    except OSError as exc:
        raise PipelineError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path


def ask_password() -> str:
    """Twice at a terminal (the two must match); else one line from standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass("New password for the web page: ")
        if first != getpass.getpass("The same password again: "):
            raise PipelineError("the two passwords differ; nothing was changed")
        return first
    line = sys.stdin.readline()
    if not line:
        raise PipelineError("no password on standard input; nothing was changed")
    return line.rstrip("\r\n")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 32) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                          maxmem=_MAX_MEMORY + 1024 * 1024, dklen=length)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
