"""The Dropbox source end to end: the real command line in a subprocess, the real ``dropbox``
SDK inside it, talking HTTPS to the local emulator (tests/support/dropbox_emulator.py).

The SDK reads its hosts from the environment when it is imported, so every run gets
``emulator.env()``; ``REQUESTS_CA_BUNDLE`` points at the public CA bundle to prove that a
configured ``ca_file`` is not silently overridden by it. Each test gets its own folder in
one module-wide emulator, and every run checks that the refresh token never shows up in
the output.
"""

from __future__ import annotations

import itertools
import random
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import certifi
import pytest

from tests import images
from tests.support.dropbox_emulator import DropboxEmulator

APP_KEY = "frame-ingest-test-app"
FOLDER_NUMBERS = itertools.count(1)
FAKE_JPEG = b"\xff\xd8\xff\xe0"    # a JPEG signature: passes the sniff, fails the gate


@pytest.fixture(scope="module")
def emulator():
    with DropboxEmulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    return [images.jpeg(images.photo(seed)) for seed in range(200, 206)]


@dataclass
class Linked:
    """A temporary HOME whose frame-ingest is linked to a folder of the emulated Dropbox."""

    home: object
    emulator: DropboxEmulator
    folder: str
    token: str
    settings: dict = field(default_factory=dict)

    def put(self, name: str, data: bytes) -> str:
        path = f"{self.folder}/{name}"
        self.emulator.put_file(path, data)
        return path

    def configure(self, **settings) -> Path:
        self.settings.update(settings)
        values = {"enabled": True, "app_key": APP_KEY, "folder": self.folder,
                  "ca_file": self.emulator.ca_file, "retries": 2, **self.settings}
        lines = ["[sources.folder]", "enabled = false", "", "[sources.dropbox]"]
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
        path = self.home.path / "frame-ingest.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def env(self) -> dict:
        return {**self.home.env, **self.emulator.env(), "REQUESTS_CA_BUNDLE": certifi.where()}

    def run(self, *arguments: str, expect: int | None = 0) -> subprocess.CompletedProcess:
        config = self.configure()
        result = self.home.run("--config", str(config), *arguments,
                               extra_env={**self.emulator.env(),
                                          "REQUESTS_CA_BUNDLE": certifi.where()})
        output = result.stdout + result.stderr
        assert self.token not in output, "the refresh token leaked into the output"
        assert "Traceback" not in output, output
        if expect is not None:
            assert result.returncode == expect, output
        return result

    def downloads(self, name: str) -> int:
        return self.emulator.count("files/download", path=f"{self.folder}/{name}")


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


@pytest.fixture
def linked(home, emulator) -> Linked:
    token = emulator.add_refresh_token(APP_KEY)
    home.state_dir.mkdir(parents=True)
    (home.state_dir / "dropbox-refresh-token").write_text(token + "\n")
    yield Linked(home, emulator, f"/Family Photos {next(FOLDER_NUMBERS)}", token)
    emulator.clear_faults()
    emulator.page_size = 500


def staged_items(home) -> list[Path]:
    staging = home.state_dir / "staging"
    return sorted(staging.iterdir()) if staging.exists() else []


# ----------------------------------------------------------------------------- listing


def test_first_run_takes_images_from_nested_folders_and_later_runs_only_new_ones(linked,
                                                                                 photos):
    linked.put("IMG_1.jpg", photos[0])
    linked.put("2026/Summer/IMG_2.jpg", photos[1])
    linked.put("notes.txt", b"not a photo at all, just words")
    assert "dropbox: OK: signed in as" in linked.run("check").stdout
    first = linked.run("run")
    assert "skipped /Family Photos" in first.stderr and "notes.txt: not an image" in first.stderr
    assert linked.home.files(linked.home.pictures) == ["IMG_1.jpg", "IMG_2.jpg"]
    assert (linked.home.pictures / "IMG_2.jpg").read_bytes() == photos[1]

    linked.put("2026/IMG_3.jpg", photos[2])
    linked.run("run")
    assert linked.home.files(linked.home.pictures) == ["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg"]
    assert linked.emulator.count("files/list_folder/continue") >= 1
    assert [linked.downloads(name) for name in ("IMG_1.jpg", "2026/Summer/IMG_2.jpg",
                                                "2026/IMG_3.jpg")] == [1, 1, 1]
    assert "fetched=0" in linked.run("run").stderr


def test_not_recursive_takes_only_the_top_folder(linked, photos):
    linked.put("top.jpg", photos[0])
    linked.put("sub/nested.jpg", photos[1])
    linked.configure(recursive=False)
    linked.run("run")
    assert linked.home.files(linked.home.pictures) == ["top.jpg"]


def test_pagination_follows_has_more(linked, photos):
    for number, data in enumerate(photos[:5]):
        linked.put(f"IMG_{number}.jpg", data)
    linked.emulator.page_size = 2
    before = linked.emulator.count("files/list_folder/continue")
    linked.run("run")
    assert len(linked.home.files(linked.home.pictures)) == 5
    assert linked.emulator.count("files/list_folder/continue") - before >= 2


def test_a_reset_cursor_falls_back_to_a_full_listing_without_fetching_twice(linked, photos):
    linked.put("IMG_1.jpg", photos[0])
    linked.put("IMG_2.jpg", photos[1])
    linked.run("run")
    linked.emulator.reset_cursors()
    linked.put("IMG_3.jpg", photos[2])
    result = linked.run("run")
    assert "no longer valid" in result.stderr
    assert linked.home.files(linked.home.pictures) == ["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg"]
    assert [linked.downloads(f"IMG_{n}.jpg") for n in (1, 2, 3)] == [1, 1, 1]


def test_files_over_max_file_mb_are_skipped_without_downloading(linked, photos):
    linked.put("big.jpg", FAKE_JPEG + bytes(3 * 1024 * 1024))
    linked.put("small.jpg", photos[0])
    linked.configure(max_file_mb=2)
    result = linked.run("run")
    assert "big.jpg: 3.0 MiB is over max_file_mb = 2" in result.stderr
    assert linked.downloads("big.jpg") == 0
    assert linked.home.files(linked.home.pictures) == ["small.jpg"]


# ----------------------------------------------------------------------------- after_ingest


@pytest.mark.parametrize("after_ingest", ["keep", "move", "delete"])
def test_after_ingest(linked, photos, after_ingest):
    move_to = f"{linked.folder}/On the frame"
    linked.put("IMG_1.jpg", photos[0])
    linked.put("trip/IMG_2.jpg", photos[1])
    linked.put("notes.txt", b"left alone: not an image")
    linked.put("On the frame/IMG_1.jpg", photos[2])   # shown before; must not be re-ingested
    linked.configure(after_ingest=after_ingest, move_to=move_to)
    linked.run("run")
    paths = set(linked.emulator.list_paths())
    folder = linked.folder
    if after_ingest == "keep":
        assert {f"{folder}/IMG_1.jpg", f"{folder}/trip/IMG_2.jpg"} <= paths
        expected_pictures = 3                           # the On the frame file too
    elif after_ingest == "move":
        assert f"{folder}/IMG_1.jpg" not in paths
        assert {f"{move_to}/IMG_1 (1).jpg", f"{move_to}/trip/IMG_2.jpg"} <= paths
        expected_pictures = 2
    else:
        assert f"{folder}/IMG_1.jpg" not in paths and f"{folder}/trip/IMG_2.jpg" not in paths
        expected_pictures = 3
    assert f"{folder}/notes.txt" in paths
    assert len(linked.home.files(linked.home.pictures)) == expected_pictures
    again = linked.run("run")
    assert "fetched=0" in again.stderr
    assert len(linked.home.files(linked.home.pictures)) == expected_pictures


# ----------------------------------------------------------------------------- faults


def _rate_limit(linked, path):
    linked.emulator.fail_next("files/list_folder", 429, retry_after=1)
    return "rate limit"


def _server_error(linked, path):
    linked.emulator.fail_next("files/download", 500)
    return "server error 500"


def _token_server_error(linked, path):
    linked.emulator.fail_next("oauth2/token", 503)
    return "server error 503"


def _dropped_connection(linked, path):
    linked.emulator.drop_connection_mid_download(path, after_bytes=40_000)
    return "download"


def _wrong_content_hash(linked, path):
    linked.emulator.corrupt_content_hash(path)
    return "does not match Dropbox's content_hash"


@pytest.mark.parametrize("inject", [_rate_limit, _server_error, _token_server_error,
                                    _dropped_connection, _wrong_content_hash])
def test_injected_fault_is_retried_and_the_file_arrives_intact(linked, photos, inject):
    path = linked.put("IMG_1.jpg", photos[0])
    expected_log = inject(linked, path)
    result = linked.run("run")
    assert "retry 1 of 2" in result.stderr and expected_log in result.stderr
    assert (linked.home.pictures / "IMG_1.jpg").read_bytes() == photos[0]


def test_persistent_corruption_is_reported_and_nothing_is_half_staged(linked, photos):
    path = linked.put("IMG_1.jpg", photos[0])
    linked.put("IMG_2.jpg", photos[1])
    linked.emulator.corrupt_content_hash(path, times=None)
    result = linked.run("fetch", expect=1)
    assert "IMG_1.jpg: download of" in result.stderr and "content_hash" in result.stderr
    assert linked.downloads("IMG_1.jpg") == 3             # the first try and two retries
    assert len(staged_items(linked.home)) == 1            # IMG_2 only, no leftover temp dir
    linked.emulator.clear_faults()
    linked.run("run")                                     # the cursor did not move past it
    assert linked.home.files(linked.home.pictures) == ["IMG_1.jpg", "IMG_2.jpg"]
    assert linked.downloads("IMG_2.jpg") == 1


# ----------------------------------------------------------------------------- credentials


def test_revoked_token_fails_clearly_without_showing_the_token(linked, photos):
    linked.put("IMG_1.jpg", photos[0])
    linked.emulator.revoke_refresh_token(linked.token)
    result = linked.run("-v", "run", expect=1)
    assert "run `frame-ingest dropbox-auth`" in result.stderr
    assert linked.emulator.count("oauth2/token", status=400) == 1   # not retried
    check = linked.run("check", expect=1)
    assert "dropbox: FAILED:" in check.stdout and "dropbox-auth" in check.stdout


def test_ca_file_empty_leaves_requests_ca_bundle_in_charge(linked, photos):
    linked.put("IMG_1.jpg", photos[0])
    linked.configure(ca_file="")
    config = linked.configure()
    trusted = linked.home.run("--config", str(config), "check",
                              extra_env={**linked.emulator.env(),
                                         "REQUESTS_CA_BUNDLE": linked.emulator.ca_file})
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    untrusted = linked.run("check", expect=1)
    assert "certificate is not trusted" in untrusted.stdout


def test_dropbox_auth_links_the_account_and_writes_a_private_token_file(linked, photos):
    token_file = linked.home.path / "secrets" / "dropbox" / "token"
    linked.home.state_dir.joinpath("dropbox-refresh-token").unlink()
    config = linked.configure(refresh_token_file=str(token_file))
    child = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config),
                              "dropbox-auth"], env=linked.env(), cwd=linked.home.path,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        url = ""
        while not url.startswith("https://"):
            line = child.stdout.readline()
            assert line, child.stderr.read()
            url = line.strip()
        code = linked.emulator.authorize(url)
        output, errors = child.communicate(code + "\n", timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, output + errors
    assert "frame.tester@example.org" in output and str(token_file) in output
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    new_token = token_file.read_text().strip()
    assert new_token and new_token not in output + errors
    linked.put("IMG_1.jpg", photos[0])
    linked.token = new_token
    linked.run("run")
    assert linked.home.files(linked.home.pictures) == ["IMG_1.jpg"]


# ----------------------------------------------------------------------------- big files


@pytest.fixture(scope="module")
def huge() -> bytes:
    """100 MiB that start like a JPEG: the source downloads it, the gate would reject it."""
    return FAKE_JPEG + random.Random(7).randbytes(100 * 1024 * 1024 - len(FAKE_JPEG))


# Peak memory of a child as seen from a small launcher: on Linux ru_maxrss survives exec,
# so a child forked straight from pytest (hundreds of MB, holding the 100 MiB test file)
# would report pytest's size. Forked from a ~10 MB launcher, it reports its own.
LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call([sys.executable, "-m", "pipeline", *sys.argv[1:]],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def peak_rss_of(linked, *arguments: str) -> tuple[int, int]:
    """Run frame-ingest; return (exit code, its peak resident memory in bytes)."""
    result = subprocess.run([sys.executable, "-c", LAUNCHER, "--config",
                             str(linked.configure()), *arguments], env=linked.env(),
                            cwd=linked.home.path, capture_output=True, text=True, timeout=300)
    code, peak = result.stdout.split()
    return int(code), int(peak)


@pytest.mark.slow
def test_a_100_mb_download_streams_with_flat_memory(linked, photos, huge):
    linked.configure(max_file_mb=200)
    linked.put("small.jpg", photos[0])
    code, baseline = peak_rss_of(linked, "fetch", "dropbox")
    assert code == 0
    linked.put("huge.jpg", huge)
    started = time.monotonic()
    code, peak = peak_rss_of(linked, "fetch", "dropbox")
    seconds = time.monotonic() - started
    linked.emulator.delete(f"{linked.folder}/huge.jpg")
    assert code == 0 and len(staged_items(linked.home)) == 2
    print(f"\n100 MiB download: peak RSS {peak / 1e6:.1f} MB vs {baseline / 1e6:.1f} MB for a "
          f"small file (+{(peak - baseline) / 1e6:.1f} MB), {seconds:.1f} s "
          f"({len(huge) / 1e6 / seconds:.0f} MB/s including staging)")
    assert peak - baseline < 50e6


def partial_bytes(staging: Path) -> int:
    """Bytes in unfinished staged items (a temp dir may be renamed while we look)."""
    total = 0
    for part in staging.glob(".tmp-*/data"):
        try:
            total += part.stat().st_size
        except FileNotFoundError:
            pass
    return total


@pytest.mark.slow
def test_kill_9_mid_download_then_rerun_loses_nothing_and_fetches_nothing_twice(linked, photos,
                                                                               huge):
    linked.configure(max_file_mb=200)
    linked.put("a.jpg", photos[0])
    linked.put("huge.jpg", huge)
    child = subprocess.Popen([sys.executable, "-m", "pipeline", "--config",
                              str(linked.configure()), "fetch"], env=linked.env(),
                             cwd=linked.home.path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    staging = linked.home.state_dir / "staging"
    deadline = time.monotonic() + 60
    while partial_bytes(staging) < 1024 * 1024:
        assert time.monotonic() < deadline, "no download in progress"
        with pytest.raises(subprocess.TimeoutExpired):  # poll: the child must still be running
            child.wait(timeout=0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert list(staging.glob(".tmp-*/data")), "killed after the download, not during it"
    assert len(staged_items(linked.home)) == 2            # a.jpg staged + the partial temp dir
    linked.run("fetch")
    items = [item for item in staged_items(linked.home) if not item.name.startswith(".")]
    assert len(items) == 2 and not list(staging.glob(".tmp-*"))
    assert sorted((item / "data").stat().st_size for item in items) == \
        sorted([len(photos[0]), len(huge)])
    assert linked.downloads("a.jpg") == 1 and linked.downloads("huge.jpg") == 2
    linked.emulator.delete(f"{linked.folder}/huge.jpg")
    assert "fetched=0" in linked.run("fetch").stderr


def test_bad_after_ingest_value_is_a_config_error(linked):
    linked.configure(after_ingest="archive")
    result = linked.run("check", expect=2)
    assert '[sources.dropbox] after_ingest: expected one of "keep", "move", "delete"' \
        in result.stderr


# ----------------------------------------------------------------------------- config rules


def refused_before_anything_runs(home, text: str, *arguments: str) -> str:
    """Run with the config ``text`` (the drop folder on, holding a photo); assert exit 2 with
    one line naming the file, and that nothing was touched. Returns that line."""
    config = home.path / "frame-ingest.toml"
    config.write_text(text)
    config.chmod(0o600)         # no warning about a config file others can read
    home.drop("IMG_0001.jpg", images.jpeg(images.photo(207)))
    result = home.run("--config", str(config), *(arguments or ("run",)))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: [sources.dropbox] "), lines
    assert home.files(home.inbox) == ["IMG_0001.jpg"] and not home.state_dir.exists()
    return lines[0]


@pytest.mark.parametrize("keys, expected", [
    ({"folder": "Family Photos"}, 'folder: a Dropbox path starts with "/", got "Family Photos"'),
    ({"app_key": "  "}, "app_key: empty: create a Dropbox app"),
    ({"after_ingest": "move", "move_to": "On the frame"},
     'move_to: a Dropbox path starts with "/", got "On the frame"'),
    ({"after_ingest": "move", "move_to": "/family photos/"},
     'move_to: "/family photos/" must be a folder that does not contain folder '
     '"/Family Photos"'),
    ({"after_ingest": "move", "move_to": "/"},
     'move_to: "/" must be a folder that does not contain folder'),
])
@pytest.mark.parametrize("command", ["run", "check"])
def test_dropbox_settings_that_cannot_work_exit_2_before_anything_runs(home, keys, expected,
                                                                       command):
    values = {"enabled": True, "app_key": APP_KEY, "folder": "/Family Photos", **keys}
    text = "[sources.dropbox]\n" + "".join(f"{key} = {_toml(value)}\n"
                                           for key, value in values.items())
    assert expected in refused_before_anything_runs(home, text, command)


def test_a_move_to_inside_folder_or_a_root_folder_with_move_to_is_accepted(home):
    for folder, move_to in (("/Family Photos", "/Family Photos/On the frame"), ("/", "/Done")):
        config = home.path / "frame-ingest.toml"
        config.write_text(f'[sources.folder]\nenabled = false\n[sources.dropbox]\nenabled = true\n'
                          f'app_key = "{APP_KEY}"\nfolder = "{folder}"\n'
                          f'after_ingest = "move"\nmove_to = "{move_to}"\n')
        result = home.run("--config", str(config), "status")
        assert result.returncode == 0, result.stderr


def test_a_disabled_dropbox_is_not_checked_by_run_but_fetching_it_by_name_is_refused(home):
    text = '[sources.dropbox]\nenabled = false\napp_key = ""\nfolder = "no slash"\n'
    line = refused_before_anything_runs(home, text, "fetch", "dropbox")
    assert "[sources.dropbox] enabled: false, so frame-ingest does not use this source" in line
    result = home.run("--config", str(home.path / "frame-ingest.toml"), "run")
    assert result.returncode == 0, result.stderr
    assert home.files(home.pictures) == ["IMG_0001.jpg"]


def test_dropbox_auth_with_no_app_key_exits_2_even_while_dropbox_is_disabled(home):
    line = refused_before_anything_runs(home, '[sources.dropbox]\nenabled = false\n',
                                        "dropbox-auth")
    assert "[sources.dropbox] app_key: empty" in line


def test_content_hash_matches_the_sdks_across_4_mib_blocks_in_any_chunking():
    from dropbox.content_hash import DropboxContentHasher

    from pipeline.sources.dropbox_download import ContentHasher
    data = random.Random(11).randbytes(9 * 1024 * 1024 + 5)
    for size in (0, 1, 4 * 1024 * 1024, len(data)):
        part = data[:size]
        reference = DropboxContentHasher()
        reference.update(part)
        ours = ContentHasher()
        for start in range(0, size, 1_000_003):
            ours.update(part[start:start + 1_000_003])
        assert ours.hexdigest() == reference.hexdigest(), size
