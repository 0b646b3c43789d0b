"""Interrupted library actions are finished exactly once by the next run.

Each test interrupts a real ``frame-ingest`` command after its plan is journaled: a file
where a target folder should be makes the move fail the way a crash would leave it (the
plan in the journal, the files where they were), then the folder is put right and the next
command replays the plan. The SIGKILL trials of tests/test_reliability_kill.py cover the
random moments; these cover each step on purpose.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from datetime import date

import pytest

from pipeline.items import Provenance
from pipeline.library import move_file
from pipeline.staging import Staging
from pipeline.store import MIGRATIONS, Store
from tests import images


@pytest.fixture(scope="module")
def picture():
    return images.photo(41)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def journal(home) -> list[dict]:
    with Store(home.state_dir / "store.sqlite3") as store:
        return [plan for _, plan in store.journal()]


def status(home) -> dict:
    return json.loads(home.run("status", "--json", check=True).stdout)


def quarantine_list(home) -> list[dict]:
    return json.loads(home.run("quarantine", "list", "--json", check=True).stdout)


def block(folder) -> None:
    """A file where ``folder`` should be: every move into it fails, nothing is lost."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_bytes(b"")


def unblock(folder) -> None:
    folder.unlink()
    folder.mkdir()


def today(home):
    return home.quarantine / date.today().isoformat()


@pytest.mark.parametrize("stop_after_move", [False, True])
def test_rerun_finishes_an_interrupted_promotion_once(home, picture, stop_after_move):
    payload = images.jpeg(picture)
    home.drop("IMG_9.jpg", payload)
    block(home.pictures)
    assert home.run("run").returncode == 1
    assert len(journal(home)) == 1
    unblock(home.pictures)
    if stop_after_move:  # as a crash right after the move left it
        [staged] = (home.state_dir / "staging").glob("*/data")
        move_file(staged, home.pictures / "IMG_9.jpg")
    result = home.run("run", "--json", check=True)
    summary = json.loads(result.stdout)
    assert home.files(home.pictures) == ["IMG_9.jpg"]
    assert (home.pictures / "IMG_9.jpg").read_bytes() == payload
    assert home.files(home.quarantine) == [] and home.files(home.state_dir / "staging") == []
    assert status(home)["library_files"] == 1 and status(home)["decisions"] == {"promoted": 1}
    assert summary["duplicates"] == 0
    assert journal(home) == []


def test_an_interrupted_restore_is_finished_and_the_pair_remembered(home, picture):
    home.drop("IMG_1.jpg", images.jpeg(picture))
    home.run("run", check=True)
    home.drop("copy.jpg", images.jpeg(picture, quality=55))
    home.run("run", check=True)
    [entry] = quarantine_list(home)
    pictures_aside = home.path / "Pictures aside"
    home.pictures.rename(pictures_aside)
    block(home.pictures)
    failed = home.run("quarantine", "restore", entry["name"])
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert [plan["action"] for plan in journal(home)] == ["restore"]
    home.pictures.unlink()
    pictures_aside.rename(home.pictures)
    again = home.run("quarantine", "restore", entry["name"], check=True)  # replays, then done
    assert "restored to" in again.stdout and journal(home) == []
    assert home.files(home.pictures) == ["IMG_1.jpg", "copy.jpg"]
    assert quarantine_list(home) == [] and home.files(home.quarantine) == []
    swept = json.loads(home.run("resweep", "--json", check=True).stdout)
    assert swept["quarantined"] == 0 and swept["groups"] == 0  # the pair is remembered
    assert home.files(home.pictures) == ["IMG_1.jpg", "copy.jpg"]


def test_a_replace_interrupted_between_its_two_moves_is_finished(home, picture):
    home.drop("mail-size.jpg", images.jpeg(images.resized(picture, 0.5)))
    home.run("run", check=True)
    full = images.jpeg(picture)
    home.drop("full-size.jpg", full)
    block(today(home))
    assert home.run("run").returncode == 1
    assert home.files(home.pictures) == ["full-size.jpg", "mail-size.jpg"]  # first move done
    assert len(journal(home)) == 1
    unblock(today(home))
    summary = json.loads(home.run("run", "--json", check=True).stdout)
    assert summary["promoted"] == 0 and journal(home) == []
    assert home.files(home.pictures) == ["full-size.jpg"]
    assert (home.pictures / "full-size.jpg").read_bytes() == full
    assert [path.rsplit("/", 1)[1] for path in home.files(home.quarantine)] == ["mail-size.jpg"]
    assert [entry["duplicate_of"] for entry in quarantine_list(home)] == ["full-size.jpg"]
    counts = status(home)
    assert counts["library_files"] == 1
    assert counts["decisions"] == {"promoted": 1, "replaced": 1, "quarantined": 1}


def old_store_with(home, rows: list[tuple[str, dict]]) -> None:
    """A store as the old code left it: schema version 1, journal rows in its two shapes."""
    home.state_dir.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(home.state_dir / "store.sqlite3", isolation_level=None)
    version, name, initial = MIGRATIONS[0]
    initial(connection, home.state_dir)
    connection.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                       "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    connection.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                       (version, name, "2026-11-01T00:00:00+00:00"))
    for number, (key, plan) in enumerate(rows):
        connection.execute("INSERT INTO journal VALUES (?, ?, ?)",
                           (key, json.dumps(plan), f"2026-11-01T00:00:0{number}+00:00"))
    connection.close()


def test_journal_rows_of_the_old_code_are_migrated_and_finished(home, picture):
    home.pictures.mkdir(parents=True)
    original, small = images.jpeg(picture), images.jpeg(images.resized(picture, 0.5))
    (home.pictures / "original.jpg").write_bytes(original)
    (home.pictures / "small.jpg").write_bytes(small)
    newcomer = images.jpeg(images.photo(42))
    item = Staging(home.state_dir / "staging").stage(
        io.BytesIO(newcomer), Provenance("folder", "x:1:1", "IMG_7.jpg"))
    gate_plan = {"verdict": "promoted", "folder": "pictures",
                 "target": str(home.pictures / "IMG_7.jpg"), "reason": "", "matched_path": "",
                 "method": "", "distance": 0.0, "displaced": None}
    quarantine_target = today(home) / "small.jpg"
    resweep_plan = {"path": "small.jpg", "target": str(quarantine_target),
                    "sha256": sha256(small), "matched_path": "original.jpg",
                    "matched_sha256": sha256(original), "method": "similar",
                    "distance": 0.01,
                    "reason": "duplicate of original.jpg (similar, 0.01) found by the resweep"}
    old_store_with(home, [(item.item_id, gate_plan), ("resweep:small.jpg", resweep_plan)])
    result = home.run("run", check=True)
    assert "finishing the interrupted move of IMG_7.jpg" in result.stderr
    assert "finishing the interrupted quarantine of small.jpg" in result.stderr
    assert journal(home) == []
    assert home.files(home.pictures) == ["IMG_7.jpg", "original.jpg"]
    assert (home.pictures / "IMG_7.jpg").read_bytes() == newcomer
    assert quarantine_target.read_bytes() == small
    assert home.files(home.state_dir / "staging") == []
    counts = status(home)
    assert counts["library_files"] == 2
    assert counts["decisions"] == {"promoted": 1, "quarantined": 1}
    assert [entry["duplicate_of"] for entry in quarantine_list(home)] == ["original.jpg"]


def test_an_old_replace_row_interrupted_after_its_first_move_is_finished(home, picture):
    small, full = images.jpeg(images.resized(picture, 0.5)), images.jpeg(picture)
    home.pictures.mkdir(parents=True)
    (home.pictures / "mail-size.jpg").write_bytes(small)
    item = Staging(home.state_dir / "staging").stage(
        io.BytesIO(full), Provenance("folder", "x:2:2", "full-size.jpg"))
    move_file(item.data_path, home.pictures / "full-size.jpg")  # the old code's first move
    small_sha = sha256(small)
    old_plan = {"verdict": "replaced", "folder": "pictures",
                "target": str(home.pictures / "full-size.jpg"),
                "reason": "1024x768 replaces the smaller 512x384 copy",
                "matched_path": "mail-size.jpg", "matched_sha256": small_sha,
                "method": "similar", "distance": 0.01,
                "displaced": {"path": "mail-size.jpg", "target": str(today(home) / "mail-size.jpg"),
                              "sha256": small_sha}}
    old_store_with(home, [(item.item_id, old_plan)])
    home.run("run", check=True)
    assert journal(home) == [] and home.files(home.state_dir / "staging") == []
    assert home.files(home.pictures) == ["full-size.jpg"]
    assert (today(home) / "mail-size.jpg").read_bytes() == small
    assert [entry["duplicate_of"] for entry in quarantine_list(home)] == ["full-size.jpg"]
    counts = status(home)
    assert counts["library_files"] == 1
    assert counts["decisions"] == {"replaced": 1, "quarantined": 1}


def test_a_plan_whose_file_vanished_is_resolved_and_the_run_goes_on(home, picture):
    home.drop("IMG_2.jpg", images.jpeg(picture))
    block(home.pictures)
    assert home.run("run").returncode == 1
    [staged] = (home.state_dir / "staging").glob("*/data")
    staged.unlink()                     # someone removed the bytes before the rerun
    unblock(home.pictures)
    later = images.jpeg(images.photo(43))
    home.drop("IMG_3.jpg", later)
    result = home.run("run", "--json", check=True)
    warnings = [line for line in result.stderr.splitlines() if "is gone" in line]
    assert len(warnings) == 1 and "IMG_2.jpg" in warnings[0]
    assert json.loads(result.stdout)["promoted"] == 1
    assert home.files(home.pictures) == ["IMG_3.jpg"]
    assert journal(home) == [] and home.files(home.state_dir / "staging") == []
    assert status(home)["decisions"] == {"promoted": 1}


def test_a_replace_whose_newcomer_vanished_keeps_the_library_copy(home, picture):
    home.drop("mail-size.jpg", images.jpeg(images.resized(picture, 0.5)))
    home.run("run", check=True)
    home.drop("full-size.jpg", images.jpeg(picture))
    block(today(home))
    assert home.run("run").returncode == 1
    (home.pictures / "full-size.jpg").unlink()   # someone removed the newcomer meanwhile
    unblock(today(home))
    result = home.run("run", check=True)
    assert len([line for line in result.stderr.splitlines() if "is gone" in line]) == 1
    assert home.files(home.pictures) == ["mail-size.jpg"] and home.files(home.quarantine) == []
    assert journal(home) == [] and quarantine_list(home) == []
    counts = status(home)
    assert counts["library_files"] == 1 and counts["decisions"] == {"promoted": 1}
