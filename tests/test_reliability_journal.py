"""Journaled plans that can no longer be carried out as written (issue 11, item 6): a
replace whose move to quarantine failed and whose library copy a person then deleted, a
staged item that was damaged while its plan waited. Each must resolve with one clear line
and the run goes on; nothing that still exists is lost.

We run as root (CI does), and root writes into a folder of mode 0555. A folder with the
immutable attribute (``chattr +i``) refuses every new name to root too (EPERM), so that is
how these tests make a folder unwritable (a file in its place where the file system has no
such attribute); without root, mode 0555 does the same. A read-only quarantine is a tmpfs
remounted read-only, as in test_reliability_disk.py.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests import images
from tests.test_reliability_everyday import assert_clean_output


def photo_at(seed: int, long_edge: int) -> bytes:
    return images.jpeg(images.resized(images.photo(seed), long_edge=long_edge))


def store_rows(home, sql: str) -> list[tuple]:
    with sqlite3.connect(home.state_dir / "store.sqlite3") as connection:
        return connection.execute(sql).fetchall()


def chattr(flag: str, path: Path) -> bool:
    """Set or clear a file attribute; False where that cannot be done."""
    try:
        return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def locked(folder: Path):
    """Make ``folder`` refuse new names (to root too); return the function that undoes it."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    if chattr("+i", folder):
        return lambda: chattr("-i", folder)
    folder.rmdir()              # no chattr here (overlayfs, tmpfs): a file in its place
    folder.write_bytes(b"")
    return lambda: (folder.unlink(), folder.mkdir())


@pytest.fixture
def unwritable_quarantine(home):
    undo = locked(home.quarantine)
    try:
        probe = home.quarantine / "probe"
        with pytest.raises(OSError):
            probe.mkdir()
        yield home.quarantine
    finally:
        undo()


def test_a_replace_interrupted_then_overtaken_by_a_person_resolves_and_the_run_goes_on(
        home, unwritable_quarantine):
    home.drop("small.jpg", photo_at(1901, 240))
    home.drop("other.jpg", photo_at(1902, 240))
    assert home.run("run").returncode == 0
    assert home.files(home.pictures) == ["other.jpg", "small.jpg"]

    big = photo_at(1901, 480)              # a better copy arrives; quarantine is unwritable
    home.drop("big.jpg", big)
    failed = home.run("run")
    assert failed.returncode == 1 and str(home.quarantine) in failed.stderr, failed.stderr
    assert home.files(home.pictures) == ["big.jpg", "other.jpg", "small.jpg"]
    assert len(store_rows(home, "SELECT id FROM journal")) == 1


    (home.pictures / "small.jpg").unlink()  # a person deletes the small copy
    home.drop("later.jpg", photo_at(1903, 240))
    result = home.run("run")
    assert result.returncode == 0, result.stderr
    assert_clean_output(result)
    resolved = [line for line in result.stderr.splitlines()
                if "small.jpg" in line and line.startswith("WARNING")]
    assert len(resolved) == 1, result.stderr            # (and the removal is remembered)
    assert "is gone" in resolved[0], resolved[0]
    assert home.files(home.pictures) == ["big.jpg", "later.jpg", "other.jpg"]
    assert (home.pictures / "big.jpg").read_bytes() == big
    assert home.files(home.quarantine) == []              # the target folder untouched
    assert store_rows(home, "SELECT id FROM journal") == []
    assert sorted(row[0] for row in store_rows(home, "SELECT path FROM files")) == \
        ["big.jpg", "later.jpg", "other.jpg"]
    decided = store_rows(home, "SELECT folder, path FROM decisions WHERE folder != 'pictures'")
    assert decided == []                   # no record points at a file that is nowhere
    assert list((home.state_dir / "staging").iterdir()) == []


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a read-only tmpfs and an "
                                "immutable file need root (CI runs as root)")


@needs_root
def test_a_replace_whose_copy_reached_a_quarantine_that_then_went_read_only_is_finished(
        home):
    """The copy into quarantine was made, removing the library copy failed (here: the
    file is immutable), then the quarantine's card went read-only and a person deleted the
    library copy. Finishing the move must not need to write into the quarantine."""
    home.quarantine.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(home.quarantine)],
                   check=True)
    small = home.pictures / "small.jpg"
    try:
        home.drop("small.jpg", photo_at(1911, 240))
        assert home.run("run").returncode == 0
        if not chattr("+i", small):
            pytest.skip("chattr +i is not supported here")
        home.drop("big.jpg", photo_at(1911, 480))
        failed = home.run("run")
        assert failed.returncode == 1 and "not writable" in failed.stderr, failed.stderr
        assert chattr("-i", small)
        subprocess.run(["mount", "-o", "remount,ro", str(home.quarantine)], check=True)
        small.unlink()
        result = home.run("run")
        assert result.returncode == 0, result.stderr
        assert_clean_output(result)
        assert home.files(home.pictures) == ["big.jpg"]
        quarantined = home.files(home.quarantine)
        assert len(quarantined) == 1 and quarantined[0].endswith("/small.jpg")
        assert store_rows(home, "SELECT folder, path FROM decisions WHERE folder != "
                          "'pictures'") == [("quarantine", quarantined[0])]
        assert store_rows(home, "SELECT id FROM journal") == []
        assert [row[0] for row in store_rows(home, "SELECT path FROM files")] == ["big.jpg"]
    finally:
        chattr("-i", small)
        subprocess.run(["umount", str(home.quarantine)], check=True)


def garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))


def journaled_item(home) -> Path:
    """The one staged item whose plan waits in the journal."""
    assert len(store_rows(home, "SELECT id FROM journal")) == 1
    (item,) = (home.state_dir / "staging").iterdir()
    return item


def test_journaled_plans_whose_staged_item_was_damaged_resolve_and_keep_the_bytes(home):
    """Pictures refuses new names, so each run journals the plan of one staged photo and
    stops; the photo's staged item is then damaged, and the next run must resolve that plan
    (and journal the next one). Bytes garbled: set aside with them and the reason. Bytes
    gone: dropped with one line. meta.json garbled: the plan says everything, it is filed."""
    photos = {name: photo_at(seed, 240) for seed, name in
              enumerate(("garbled.jpg", "gone.jpg", "meta.jpg", "after.jpg"), 1931)}
    home.pictures.mkdir(parents=True)
    undo = locked(home.pictures)
    try:
        home.drop("garbled.jpg", photos["garbled.jpg"])
        failed = home.run("run")
        assert failed.returncode == 1 and str(home.pictures) in failed.stderr, failed.stderr
        item = journaled_item(home)
        garble(item / "data")
        garbled = (item / "data").read_bytes()

        home.drop("gone.jpg", photos["gone.jpg"])
        result = home.run("run")
        assert result.returncode == 1, result.stderr         # gone.jpg's move fails
        assert_clean_output(result)
        warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
        assert len(warnings) == 1 and "garbled.jpg" in warnings[0] \
            and "set aside" in warnings[0], result.stderr
        aside = home.state_dir / "staging-damaged"
        (kept,) = aside.iterdir()
        assert (kept / "data").read_bytes() == garbled
        assert "changed in staging" in (kept / "reason.txt").read_text()
        (journaled_item(home) / "data").unlink()

        home.drop("meta.jpg", photos["meta.jpg"])
        result = home.run("run")
        assert result.returncode == 1, result.stderr         # meta.jpg's move fails
        warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
        assert len(warnings) == 1 and "gone.jpg" in warnings[0] \
            and "is gone" in warnings[0], result.stderr
        (journaled_item(home) / "meta.json").write_bytes(b'{"prov')
    finally:
        undo()
    home.drop("after.jpg", photos["after.jpg"])
    result = home.run("run")
    assert result.returncode == 0, result.stderr
    assert_clean_output(result)
    assert "WARNING" not in result.stderr, result.stderr
    assert store_rows(home, "SELECT id FROM journal") == []
    assert list((home.state_dir / "staging").iterdir()) == []
    assert {name: (home.pictures / name).read_bytes() for name in home.files(home.pictures)} \
        == {"after.jpg": photos["after.jpg"], "meta.jpg": photos["meta.jpg"]}
    assert sorted(row[0] for row in store_rows(home, "SELECT path FROM files")) == \
        ["after.jpg", "meta.jpg"]
    status = home.run("status")
    assert status.returncode == 0, status.stderr
    assert f"set aside:   1 damaged staged items in {aside}" in status.stdout, status.stdout
