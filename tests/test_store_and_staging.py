"""The SQLite store, the staging area and the file-move helpers, on real files."""

from __future__ import annotations

import io

import pytest

from pipeline.config import parse_config
from pipeline.errors import LibraryError, StoreError
from pipeline.index import SignatureIndex
from pipeline.items import Provenance
from pipeline.library import move_file, sanitize_name, unique_target, with_extension
from pipeline.signatures import sign_bytes
from pipeline.staging import Staging, TooLarge
from pipeline.store import MIGRATIONS, Store
from tests import images


@pytest.fixture(scope="module")
def signature():
    return sign_bytes(images.jpeg(images.photo(31)), parse_config({}).gate.max_pixels)


def test_store_is_created_in_wal_mode_with_its_migrations(tmp_path):
    with Store(tmp_path / "state" / "store.sqlite3") as store:
        assert store.schema_version() == MIGRATIONS[-1][0]
        assert store.query("PRAGMA journal_mode")[0][0] == "wal"
    with Store(tmp_path / "state" / "store.sqlite3") as again:  # reopening migrates nothing
        assert len(again.query("SELECT * FROM schema_migrations")) == len(MIGRATIONS)


def test_store_round_trips_a_file_row_and_the_index_finds_it(tmp_path, signature):
    with Store(tmp_path / "s.sqlite3") as store:
        with store.transaction() as tx:
            store.put_file(tx, "a/b.jpg", 123, 456, signature)
        row = store.file("a/b.jpg")
        assert (row["size"], row["mtime_ns"], row["sha256"]) == (123, 456, signature.sha256)
        assert store.known_files() == {"a/b.jpg": (123, 456)}
        index = SignatureIndex.from_store(store)
        assert index.exact(signature.sha256) == [0]
        assert int(index.hashes[0]) == signature.phash
        assert store.thumbs([row["id"]])[row["id"]] == signature.thumb


def test_transaction_rolls_back_on_error(tmp_path, signature):
    with Store(tmp_path / "s.sqlite3") as store:
        with pytest.raises(RuntimeError):
            with store.transaction() as tx:
                store.put_file(tx, "x.jpg", 1, 1, signature)
                raise RuntimeError("boom")
        assert store.known_files() == {}


def test_overrides_are_symmetric(tmp_path):
    with Store(tmp_path / "s.sqlite3") as store:
        with store.transaction() as tx:
            store.add_override(tx, "b" * 64, "a" * 64)
        assert store.overridden_partners("a" * 64) == {"b" * 64}
        assert store.overridden_partners("b" * 64) == {"a" * 64}


def test_unusable_database_is_a_store_error(tmp_path):
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="check free space and permissions"):
        Store(path)


def test_staging_is_atomic_and_idempotent_per_origin(tmp_path):
    staging = Staging(tmp_path / "staging")
    provenance = Provenance(source="test", origin_id="1", name="a.jpg")
    item = staging.stage(io.BytesIO(b"payload"), provenance)
    assert item.data_path.read_bytes() == b"payload" and staging.contains(provenance)
    again = staging.stage(io.BytesIO(b"other"), provenance)
    assert again.item_id == item.item_id and again.data_path.read_bytes() == b"payload"
    assert [entry.item_id for entry in staging.items()] == [item.item_id]


def test_staging_refuses_oversized_and_mismatched_streams_leaving_nothing(tmp_path):
    staging = Staging(tmp_path / "staging")
    with pytest.raises(TooLarge):
        staging.stage(io.BytesIO(b"x" * 100), Provenance("t", "2", "b"), max_bytes=10)
    with pytest.raises(ValueError, match="sha256 mismatch"):
        staging.stage(io.BytesIO(b"x"), Provenance("t", "3", "c"), expected_sha256="0" * 64)
    assert list((tmp_path / "staging").iterdir()) == []


def test_leftovers_of_a_crashed_write_are_cleaned(tmp_path):
    staging = Staging(tmp_path / "staging")
    (tmp_path / "staging" / ".tmp-deadbeef").mkdir()
    (tmp_path / "staging" / ".tmp-deadbeef" / "data").write_bytes(b"half")
    assert list(staging.items()) == []
    assert list((tmp_path / "staging").iterdir()) == []


@pytest.mark.parametrize("name, expected", [
    ("../../x.jpg", "x.jpg"), ("/etc/passwd", "passwd"), ("a\x00b\x1f.jpg", "ab.jpg"),
    ("..\\..\\win.jpg", "win.jpg"), ("NUL.jpg", "_NUL.jpg"), ("", "photo"), ("...", "photo"),
    ("e\u0301t\u00e9.jpg", "\u00e9t\u00e9.jpg"), ("a:b?.jpg", "a_b_.jpg"),
])
def test_sanitize_name(name, expected):
    assert sanitize_name(name) == expected


def test_sanitize_name_bounds_long_names():
    long = sanitize_name("\u00e9" * 300 + ".jpg")
    assert long.endswith(".jpg") and len(long.encode()) <= 200


def test_extension_follows_the_real_format():
    assert with_extension("IMG_1", "JPEG") == "IMG_1.jpg"
    assert with_extension("IMG_1.JPEG", "JPEG") == "IMG_1.JPEG"
    assert with_extension("photo.jpg", "PNG") == "photo.jpg.png"


def test_move_never_overwrites_and_is_idempotent(tmp_path):
    source = tmp_path / "in.jpg"
    source.write_bytes(b"new")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "in.jpg").write_bytes(b"old")
    target = unique_target(tmp_path / "lib", "in.jpg")
    assert target.name == "in (2).jpg"
    move_file(source, target)
    assert target.read_bytes() == b"new" and not source.exists()
    move_file(source, target)  # replay after a crash: nothing to do
    other = tmp_path / "other.jpg"
    other.write_bytes(b"different")
    with pytest.raises(LibraryError, match="not overwritten"):
        move_file(other, tmp_path / "lib" / "in.jpg")
    assert (tmp_path / "lib" / "in.jpg").read_bytes() == b"old" and other.exists()
