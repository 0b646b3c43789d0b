"""File names as text: shown escaped, filed readable, stored losslessly.

A file name on Linux is any bytes but ``/`` and NUL. Python reads the bytes that are not
UTF-8 (Latin-1 ``François.jpg`` from an old zip file, a USB stick, a Samba share) as lone
surrogates (``surrogateescape``: byte 0xE7 becomes U+DCE7), and a name may hold newlines,
ESC and other control characters. Each of the three places such a name goes has its rule,
and this module is the one place that knows them:

- **shown**: ``shown(value)`` is what every printed line uses (the log formatter,
  ``status``, ``quarantine list``, the summary, the review page): control characters
  (C0, DEL, C1, the Unicode line and paragraph separators, bidirectional overrides) become
  ``\\n``, ``\\x1b``, ``\\u2028`` ...; a byte that is not UTF-8 becomes ``\\xe7``. A printed
  event therefore always stays one line, and a terminal never receives a raw escape.
- **filed**: ``readable_name(name)`` reads the non-UTF-8 bytes of a name as Windows-1252
  (the encoding such names nearly always come from), so the photo is filed in Pictures as
  ``François.jpg``; ``library.sanitize_name`` then removes control characters as before.
- **stored**: SQLite TEXT must be valid UTF-8, so a value that cannot be encoded as UTF-8
  is stored as its raw bytes, an SQLite BLOB in the same column (``StoreConnection``), and
  every TEXT column is read back with ``surrogateescape`` (``from_store``). Valid UTF-8 text
  is stored exactly as before, and a BLOB never equals a TEXT, so the encoding is lossless
  and unambiguous and existing databases need no migration.
"""

from __future__ import annotations

import logging
import os
import shlex
import sqlite3

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKS = {"\u2028", "\u2029", "\x85"}


def _needs_escape(character: str) -> bool:
    code = ord(character)
    return (code < 0x20 or 0x7f <= code < 0xa0 or 0xd800 <= code < 0xe000
            or character in _BIDI or character in _LINE_BREAKS)


def _escaped(character: str) -> str:
    code = ord(character)
    if character in _NAMED:
        return _NAMED[character]
    if 0xdc80 <= code <= 0xdcff:            # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xdc00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: object) -> str:
    """``value`` as one printable line: control characters and non-UTF-8 bytes escaped."""
    text = str(value)
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escaped(character) if _needs_escape(character) else character
                   for character in text)


def readable_name(name: str) -> str:
    """``name`` with every byte that was not UTF-8 read as Windows-1252 (Latin-1 where
    Windows-1252 leaves a byte undefined)."""
    if name.isascii() or not any(0xdc80 <= ord(character) <= 0xdcff for character in name):
        return name
    out = []
    for character in name:
        code = ord(character)
        if 0xdc80 <= code <= 0xdcff:
            raw = bytes([code - 0xdc00])
            try:
                character = raw.decode("cp1252")
            except UnicodeDecodeError:
                character = raw.decode("latin-1")
        out.append(character)
    return "".join(out)


def shell_word(value: str) -> str:
    """``value`` quoted for a POSIX shell, on one line: ``$'...'`` (bash, zsh, ksh) with
    escapes when it holds control characters or bytes that are not UTF-8."""
    if not any(_needs_escape(character) for character in value):
        return shlex.quote(value)
    body = "".join(_escaped(character) if _needs_escape(character)
                   else "\\" + character if character in "\\'" else character
                   for character in value)
    return f"$'{body}'"


def one_line_record(record: logging.LogRecord) -> bool:
    """A logging filter: the message of every record made one printable line."""
    record.msg, record.args = shown(record.getMessage()), None
    return True


# --- the store ------------------------------------------------------------------------

def to_store(value: object) -> object:
    """A parameter as SQLite can hold it: str that is not UTF-8 becomes its raw bytes."""
    if type(value) is str and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            try:
                return os.fsencode(value)
            except UnicodeEncodeError:
                return value.encode("utf-8", "surrogatepass")
    return value


def _parameters(parameters):
    if isinstance(parameters, dict):
        return {key: to_store(value) for key, value in parameters.items()}
    return tuple(to_store(value) for value in parameters)


def from_store(data: bytes) -> str:
    """Converter for every TEXT column: UTF-8 text as it is, raw bytes as surrogates."""
    return data.decode("utf-8", "surrogateescape")


class StoreConnection(sqlite3.Connection):
    """A connection whose statements take any Python str as a parameter (see ``to_store``)."""

    def execute(self, sql: str, parameters=(), /):
        return super().execute(sql, _parameters(parameters))

    def executemany(self, sql: str, parameters, /):
        return super().executemany(sql, (_parameters(row) for row in parameters))


def connect(path, **options) -> sqlite3.Connection:
    """``sqlite3.connect`` with the lossless encoding of ``StoreConnection``."""
    sqlite3.register_converter("TEXT", from_store)
    return sqlite3.connect(path, factory=StoreConnection, detect_types=sqlite3.PARSE_DECLTYPES,
                           **options)
