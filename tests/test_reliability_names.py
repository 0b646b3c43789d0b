"""The file-name sanitiser under fuzzing: whatever a sender calls a file, the name it gets
on disk is one safe path component (hypothesis, bounded examples)."""

from __future__ import annotations

import unicodedata

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.library import MAX_NAME_BYTES, sanitize_name

RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)),
            *(f"LPT{n}" for n in range(1, 10))}

# Names built from the pieces that cause trouble, plus anything at all.
PIECES = st.sampled_from(["..", ".", "/", "\\", "\x00", "\x1f", "\x7f", "\u202e", "\u200d",
                          " ", "C:", "CON", "nul", "Com1", "lpt9", ".jpg", ".JPEG", "e\u0301",
                          "\u00e9", "\u0301", "e", "CON ", "\ud7a3", "\U0001f600", "~", "$HOME", "%2e%2e", ":", "*",
                          "?", "\"", "<", ">", "|", "\t", "\n", "a" * 120, "\u00e9" * 90])
NAMES = st.one_of(st.text(max_size=400), st.lists(PIECES, max_size=12).map("".join),
                  st.lists(st.one_of(PIECES, st.text(max_size=5)), max_size=20).map("".join))


def problems_with(name: str) -> list[str]:
    found = []
    if not name or name in (".", ".."):
        found.append("empty or a dot name")
    if "/" in name or "\\" in name:
        found.append("a path separator")
    if any(unicodedata.category(character)[0] == "C" for character in name):
        found.append("a control or format character")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        found.append("too long")
    if unicodedata.normalize("NFC", name) != name:
        found.append("not NFC")
    if name.split(".")[0].rstrip(" ").upper() in RESERVED:
        found.append("a Windows-reserved name")
    if name != name.strip() or name.endswith("."):
        found.append("leading/trailing space or a trailing dot")
    return found


@settings(max_examples=300, deadline=None)
@given(NAMES)
@example("e\x00\u0301.jpg")      # removing the NUL after NFC left e + accent: not NFC
@example("CON .jpg")              # Windows ignores the space: still the device CON
@example("a" * 199 + " b")        # cut to length, it ended in a space
@example("../../etc/passwd")
@example("C:\\Users\\x\\IMG_1.JPG")
@example("\u202eexe.jpg")
def test_any_name_becomes_one_safe_path_component(raw):
    name = sanitize_name(raw)
    assert problems_with(name) == [], (raw, name)


@settings(max_examples=100, deadline=None)
@given(NAMES)
def test_sanitising_twice_changes_nothing(raw):
    once = sanitize_name(raw)
    assert sanitize_name(once) == once
