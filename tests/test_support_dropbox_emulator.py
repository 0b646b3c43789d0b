"""Tests for the Dropbox API emulator in tests/support/dropbox_emulator.py.

The real ``dropbox`` SDK is driven in a SUBPROCESS per test.  Why: the SDK reads its host
names from the environment once, at the first ``import dropbox`` in a process, and this
pytest process may already have imported it (product tests) or may need it pointed
elsewhere later.  A child started with ``{**os.environ, **emulator.env()}`` always sees the
emulator, whatever the test order - and it is exactly how product tests run
``frame-ingest``.  This module itself never imports ``dropbox``.

A child script may call ``pause(data)``: the test's matching ``on_pause`` callback runs
(e.g. to change the emulated Dropbox between two SDK calls) and its return value is sent
back to the child as a line on stdin.  ``done(data)`` reports the result.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import queue
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import tracemalloc
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

from tests.support.dropbox_emulator import DropboxEmulator, content_hash

ROOT = Path(__file__).resolve().parents[1]
APP_KEY = "frame-ingest-test-app"
SCRIPT_TIMEOUT = 60.0

PRELUDE = r'''
import json, os, sys
from datetime import datetime, timedelta
import dropbox
import requests
from dropbox import exceptions as dbx_exc
from dropbox.content_hash import DropboxContentHasher, content_hash as sdk_content_hash


def emit(event, data=None):
    print(json.dumps({"event": event, "data": data}), flush=True)


def pause(data=None):
    """Let the test act; returns the line it sends back."""
    emit("pause", data)
    return sys.stdin.readline().rstrip("\n")


def done(data=None):
    emit("done", data)


def session():
    """A session that trusts only the emulator's CA, immune to REQUESTS_CA_BUNDLE."""
    s = dropbox.create_session(ca_certs=os.environ["EMU_CA_FILE"])
    s.trust_env = False
    return s


def client(**kwargs):
    kwargs.setdefault("oauth2_refresh_token", os.environ.get("EMU_REFRESH_TOKEN"))
    kwargs.setdefault("app_key", os.environ["EMU_APP_KEY"])
    kwargs.setdefault("max_retries_on_error", 0)
    kwargs.setdefault("max_retries_on_rate_limit", 0)
    return dropbox.Dropbox(session=session(), timeout=20, **kwargs)


def meta(m):
    out = {"type": type(m).__name__}
    for key in ("name", "path_lower", "path_display", "id", "rev", "size", "content_hash"):
        value = getattr(m, key, None)
        if value is not None:
            out[key] = value
    return out


def raises(call):
    """Run call(); describe the exception it raised (None if it did not raise)."""
    try:
        call()
    except Exception as exc:
        return {
            "type": type(exc).__name__,
            "mro": [c.__module__ + "." + c.__name__ for c in type(exc).__mro__],
            "exc": exc,
        }
    return None
'''


# --------------------------------------------------------------------------- helpers


def _clean_environ() -> dict[str, str]:
    """os.environ without DROPBOX_* variables (a conftest may have pinned them)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DROPBOX_")}


def _pump(stream: Any, lines: queue.Queue) -> None:
    """Copy a child's stdout lines into a queue; None marks EOF."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_sdk(
    script: str,
    emu: DropboxEmulator | None = None,
    *,
    on_pause: Iterable[Callable[[Any], str | None]] = (),
    env: dict[str, str] | None = None,
    refresh_token: str | None = None,
) -> Any:
    """Run PRELUDE + script in a child Python and return what it passed to done()."""
    child_env = _clean_environ()
    child_env.update(EMU_APP_KEY=APP_KEY, **(env or {}))
    if emu is not None:
        child_env.update(emu.env(), EMU_CA_FILE=emu.ca_file)
    if refresh_token is not None:
        child_env["EMU_REFRESH_TOKEN"] = refresh_token
    handlers = list(on_pause)
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=child_env,
            cwd=ROOT,
        )
        try:
            result = _converse(proc, handlers)
            proc.wait(timeout=SCRIPT_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr.seek(0)
        assert proc.returncode == 0, f"child failed:\n{stderr.read()}"
    return result


def _converse(proc: subprocess.Popen, handlers: list) -> Any:
    """Answer the child's pause events until it exits; return its done() data."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + SCRIPT_TIMEOUT
    result = None
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line is None:
            return result
        if not line.startswith("{"):
            continue  # stray prints
        event = json.loads(line)
        if event["event"] == "pause":
            answer = handlers.pop(0)(event["data"])
            proc.stdin.write(f"{answer or ''}\n")
            proc.stdin.flush()
        elif event["event"] == "done":
            result = event["data"]


@pytest.fixture
def emu():
    """A fresh emulator per test; fails the test if the emulator hit an internal error."""
    emulator = DropboxEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()
    assert emulator.internal_errors == []


@pytest.fixture
def token(emu: DropboxEmulator) -> str:
    return emu.add_refresh_token(APP_KEY)


def _statuses(emu: DropboxEmulator) -> list[tuple[str, int]]:
    return [(record.route, record.status) for record in emu.request_log]


def test_reset_between_tests_forgets_faults_log_and_settings_but_keeps_files_and_tokens(
        emu, token):
    def refresh() -> int:
        context = ssl.create_default_context(cafile=emu.ca_file)
        connection = http.client.HTTPSConnection("127.0.0.1", emu.port, context=context)
        form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": APP_KEY}
        connection.request("POST", "/oauth2/token", urllib.parse.urlencode(form),
                           {"Content-Type": "application/x-www-form-urlencoded"})
        status = connection.getresponse().status
        connection.close()
        return status

    emu.put_file("/One test/a.jpg", b"jpeg")
    emu.fail_next("*", 500, times=None)
    emu.page_size, emu.token_lifetime = 2, 60
    emu.account = {**emu.account, "email": "someone.else@example.org"}
    assert refresh() == 500 and emu.request_log
    emu.reset_between_tests()
    assert emu.request_log == [] and (emu.page_size, emu.token_lifetime) == (500, 14400)
    assert emu.account["email"] == "frame.tester@example.org"
    assert emu.exists("/One test/a.jpg")
    assert refresh() == 200                   # the fault is gone, the token still valid


# --------------------------------------------------------------------------- auth


def test_refresh_token_auth_and_current_account(emu, token):
    result = run_sdk(
        """
        dbx = client()
        account = dbx.users_get_current_account()
        bogus = raises(lambda: dropbox.Dropbox("not-a-token", session=session())
                       .users_get_current_account())
        done({
            "account_id": account.account_id,
            "display_name": account.name.display_name,
            "root_info": type(account.root_info).__name__,
            "account_type": account.account_type.is_basic(),
            "bogus": bogus["type"],
            "bogus_invalid": bogus["exc"].error.is_invalid_access_token(),
        })
        """,
        emu,
        refresh_token=token,
    )
    assert result == {
        "account_id": emu.account["account_id"],
        "display_name": "Frame Tester",
        "root_info": "UserRootInfo",
        "account_type": True,
        "bogus": "AuthError",
        "bogus_invalid": True,
    }
    assert _statuses(emu) == [
        ("oauth2/token", 200),
        ("users/get_current_account", 200),
        ("users/get_current_account", 401),
    ]


def test_expired_access_token_is_refreshed_by_the_sdk(emu, token):
    access = emu.issue_access_token()
    emu.expire_access_tokens()
    result = run_sdk(
        """
        dbx = client(
            oauth2_access_token=os.environ["EMU_ACCESS"],
            oauth2_access_token_expiration=datetime.utcnow() + timedelta(hours=1),
        )
        done(dbx.users_get_current_account().email)
        """,
        emu,
        refresh_token=token,
        env={"EMU_ACCESS": access},
    )
    assert result == emu.account["email"]
    assert _statuses(emu) == [
        ("users/get_current_account", 401),
        ("oauth2/token", 200),
        ("users/get_current_account", 200),
    ]


def test_revoked_refresh_token_gives_auth_error(emu, token):
    emu.revoke_refresh_token(token)
    result = run_sdk(
        """
        failure = raises(lambda: client().files_list_folder(""))
        done([failure["type"], failure["exc"].error.is_invalid_access_token()])
        """,
        emu,
        refresh_token=token,
    )
    assert result == ["AuthError", True]
    assert _statuses(emu) == [("oauth2/token", 400)]


def test_pkce_flow_yields_a_working_refresh_token(emu):
    seen: dict[str, str] = {}

    def approve(data: dict) -> str:
        seen["url"] = data["url"]
        return emu.authorize(data["url"])

    result = run_sdk(
        """
        flow = dropbox.DropboxOAuth2FlowNoRedirect(
            os.environ["EMU_APP_KEY"], use_pkce=True, token_access_type="offline")
        flow.requests_session = session()  # its own session would trust REQUESTS_CA_BUNDLE
        code = pause({"url": flow.start()})
        tokens = flow.finish(code)
        again = raises(lambda: flow.finish(code))  # codes are single-use
        dbx = client(oauth2_refresh_token=tokens.refresh_token)
        done({
            "account_id": tokens.account_id,
            "has_refresh": bool(tokens.refresh_token),
            "expires_at": tokens.expires_at is not None,
            "reuse": [again["type"], again["exc"].response.status_code],
            "me": dbx.users_get_current_account().account_id,
        })
        """,
        emu,
        on_pause=[approve],
    )
    assert seen["url"].startswith(f"https://{emu.host}/oauth2/authorize?")
    assert "code_challenge_method=S256" in seen["url"]
    assert result == {
        "account_id": emu.account["account_id"],
        "has_refresh": True,
        "expires_at": True,
        "reuse": ["HTTPError", 400],
        "me": emu.account["account_id"],
    }


# --------------------------------------------------------------------------- listing


def test_list_folder_pages_then_continue_reports_changes(emu, token):
    emu.page_size = 3
    for number in range(8):
        emu.put_file(f"/Photos/p{number}.jpg", b"photo %d" % number)
    emu.put_file("/Other/x.jpg", b"elsewhere")
    old_rev = emu.metadata("/photos/p1.jpg")["rev"]

    def change_things(_data: Any) -> None:
        emu.put_file("/Photos/new.jpg", b"new")
        emu.put_file("/photos/P1.JPG", b"edited")  # case-insensitive overwrite
        emu.delete("/Photos/p2.jpg")
        emu.put_file("/Other/y.jpg", b"out of scope")

    result = run_sdk(
        """
        dbx = client()
        def drain(res):
            pages, entries = 1, list(res.entries)
            while res.has_more:
                res = dbx.files_list_folder_continue(res.cursor)
                pages, entries = pages + 1, entries + list(res.entries)
            return res.cursor, pages, [meta(e) for e in entries]
        cursor, pages, first = drain(dbx.files_list_folder("/Photos"))
        pause()
        cursor, change_pages, changes = drain(dbx.files_list_folder_continue(cursor))
        quiet = dbx.files_list_folder_continue(cursor)
        done({"pages": pages, "first": first, "changes": changes,
              "change_pages": change_pages, "quiet": [len(quiet.entries), quiet.has_more]})
        """,
        emu,
        on_pause=[change_things],
        refresh_token=token,
    )
    assert result["pages"] == 3
    assert [e["name"] for e in result["first"]] == [f"p{n}.jpg" for n in range(8)]
    assert all(e["type"] == "FileMetadata" for e in result["first"])
    changes = {(e["type"], e["path_lower"]) for e in result["changes"]}
    assert changes == {
        ("FileMetadata", "/photos/new.jpg"),
        ("FileMetadata", "/photos/p1.jpg"),
        ("DeletedMetadata", "/photos/p2.jpg"),
    }
    edited = next(e for e in result["changes"] if e["path_lower"] == "/photos/p1.jpg")
    assert edited["rev"] != old_rev and edited["path_display"] == "/Photos/p1.jpg"
    assert edited["content_hash"] == content_hash(b"edited")
    assert result["change_pages"] == 1 and result["quiet"] == [0, False]


def test_recursive_listing_and_lookup_errors(emu, token):
    emu.put_file("/a/b/c/deep.jpg", b"deep")
    emu.put_file("/a/top.jpg", b"top")
    emu.put_file("/root.jpg", b"root")
    result = run_sdk(
        """
        dbx = client()
        def paths(path, recursive):
            res = dbx.files_list_folder(path, recursive=recursive)
            return [[type(e).__name__, e.path_display] for e in res.entries]
        missing = raises(lambda: dbx.files_list_folder("/nope"))
        not_folder = raises(lambda: dbx.files_list_folder("/root.jpg"))
        done({
            "root_flat": paths("", False),
            "root_deep": paths("", True),
            "a_deep": paths("/A", True),
            "missing": [missing["type"], missing["exc"].error.get_path().is_not_found()],
            "not_folder": not_folder["exc"].error.get_path().is_not_folder(),
        })
        """,
        emu,
        refresh_token=token,
    )
    folder, file = "FolderMetadata", "FileMetadata"
    assert result["root_flat"] == [[folder, "/a"], [file, "/root.jpg"]]
    assert result["root_deep"] == [
        [folder, "/a"],
        [folder, "/a/b"],
        [folder, "/a/b/c"],
        [file, "/a/b/c/deep.jpg"],
        [file, "/a/top.jpg"],
        [file, "/root.jpg"],
    ]
    assert result["a_deep"] == result["root_deep"][:5]  # includes "/a" itself
    assert result["missing"] == ["ApiError", True]
    assert result["not_folder"] is True


def test_reset_cursor_and_longpoll(emu, token):
    emu.put_file("/Photos/a.jpg", b"a")

    def act(data: Any) -> None:
        if data == "reset":
            emu.reset_cursors()
        else:
            emu.put_file("/Photos/b.jpg", b"b")

    result = run_sdk(
        """
        dbx = client()
        cursor = dbx.files_list_folder("/Photos").cursor
        pause("change")
        poll = dbx.files_list_folder_longpoll(cursor, timeout=30)
        pause("reset")
        failure = raises(lambda: dbx.files_list_folder_continue(cursor))
        done({"changes": poll.changes, "type": failure["type"],
              "is_reset": failure["exc"].error.is_reset()})
        """,
        emu,
        on_pause=[act, act],
        refresh_token=token,
    )
    assert result == {"changes": True, "type": "ApiError", "is_reset": True}
    assert emu.count("files/list_folder/continue", status=409) == 1


# --------------------------------------------------------------------------- downloads


def test_download_bytes_metadata_hash_and_range(emu, token):
    data = random.Random(7).randbytes(5 * 1024 * 1024 + 123)  # spans two 4 MiB hash blocks
    stored = emu.put_file("/Photos/Beach.JPG", data, client_modified="2024-05-01T10:00:00Z")
    result = run_sdk(
        """
        import hashlib
        dbx = client()
        md, resp = dbx.files_download("/photos/beach.jpg")
        with resp:
            body = resp.content
        by_id, resp2 = dbx.files_download(md.id)
        resp2.close()
        _, part = dbx.files_download(
            "/Photos/Beach.JPG", extra_headers=dropbox.build_range_headers((10, 19)))
        with part:
            span = [part.status_code, part.content.hex()]
        got = dbx.files_get_metadata("/PHOTOS/beach.jpg")
        done({"meta": meta(md), "client_modified": md.client_modified.isoformat(),
              "sha256": hashlib.sha256(body).hexdigest(), "sdk_hash": sdk_content_hash(body),
              "by_id": by_id.path_display, "span": span, "get_metadata": meta(got)})
        """,
        emu,
        refresh_token=token,
    )
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["sdk_hash"] == content_hash(data) == stored["content_hash"]
    assert result["meta"] == {
        "type": "FileMetadata",
        "name": "Beach.JPG",
        "path_lower": "/photos/beach.jpg",
        "path_display": "/Photos/Beach.JPG",
        "id": stored["id"],
        "rev": stored["rev"],
        "size": len(data),
        "content_hash": stored["content_hash"],
    }
    assert result["get_metadata"] == result["meta"]
    assert result["client_modified"] == "2024-05-01T10:00:00"
    assert result["by_id"] == "/Photos/Beach.JPG"
    assert result["span"] == [206, data[10:20].hex()]
    assert emu.count("files/download", path="/Photos/beach.jpg") == 3


def test_non_ascii_names_survive_listing_and_download(emu, token):
    emu.put_file("/Fotos/Oma Ünal 🌻.jpg", "grüße".encode())
    result = run_sdk(
        """
        dbx = client()
        entry = dbx.files_list_folder("/fotos").entries[0]
        md, resp = dbx.files_download(entry.path_lower)
        with resp:
            done([entry.path_display, md.name, resp.content.decode()])
        """,
        emu,
        refresh_token=token,
    )
    assert result == ["/Fotos/Oma Ünal 🌻.jpg", "Oma Ünal 🌻.jpg", "grüße"]
    assert emu.count("files/download", path="/fotos/oma ünal 🌻.jpg") == 1


def test_large_generated_download_is_streamed(emu, token):
    size = 100 * 1024 * 1024
    emu.put_file_generated("/Video/big.mov", size, seed=11)
    tracemalloc.start()
    try:
        result = run_sdk(
            """
            dbx = client()
            md, resp = dbx.files_download("/Video/big.mov")
            hasher, total = DropboxContentHasher(), 0
            with resp:
                for chunk in resp.iter_content(1 << 20):
                    hasher.update(chunk)
                    total += len(chunk)
            done({"size": total, "hash": hasher.hexdigest(), "reported": md.content_hash})
            """,
            emu,
            refresh_token=token,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["size"] == size
    assert result["hash"] == result["reported"] == emu.content_hash("/Video/big.mov")
    assert peak < 16 * 1024 * 1024, f"server held {peak} bytes while serving 100 MiB"


def test_dropped_connection_mid_download(emu, token):
    data = random.Random(3).randbytes(3 * 1024 * 1024)
    emu.put_file("/Photos/cut.jpg", data)
    emu.drop_connection_mid_download("/Photos/cut.jpg", after_bytes=1_000_000)
    result = run_sdk(
        """
        dbx = client()
        md, resp = dbx.files_download("/Photos/cut.jpg")
        received = 0
        def read_all():
            global received
            with resp:
                for chunk in resp.iter_content(65536):
                    received += len(chunk)
        failure = raises(read_all)
        _, again = dbx.files_download("/Photos/cut.jpg")
        with again:
            second = len(again.content)
        done({"declared": int(resp.headers["Content-Length"]), "received": received,
              "mro": failure["mro"], "second": second})
        """,
        emu,
        refresh_token=token,
    )
    assert result["declared"] == len(data)
    assert 0 < result["received"] <= 1_000_000  # the last partial chunk may be lost
    assert "requests.exceptions.ChunkedEncodingError" in result["mro"]
    assert result["second"] == len(data)


@pytest.mark.parametrize("mode", ["bytes", "metadata"])
def test_corrupt_content_hash_once(emu, token, mode):
    data = b"sunset" * 50_000
    emu.put_file("/Photos/sunset.jpg", data)
    emu.corrupt_content_hash("/Photos/sunset.jpg", mode=mode)
    result = run_sdk(
        """
        dbx = client()
        def fetch():
            md, resp = dbx.files_download("/Photos/sunset.jpg")
            with resp:
                return md.content_hash == sdk_content_hash(resp.content)
        first = fetch()
        done([first, fetch()])
        """,
        emu,
        refresh_token=token,
    )
    assert result == [False, True]
    assert emu.read("/Photos/sunset.jpg") == data


# --------------------------------------------------------------------------- file operations


def test_move_delete_and_get_metadata(emu, token):
    emu.put_file("/Inbox/a.jpg", b"a")
    emu.put_file("/Album/a.jpg", b"other a")
    emu.put_file("/Trip/day1/x.jpg", b"x")
    file_id = emu.metadata("/Inbox/a.jpg")["id"]
    result = run_sdk(
        """
        dbx = client()
        moved = dbx.files_move_v2("/Inbox/a.jpg", "/Sorted/2024/a.jpg").metadata
        conflict = raises(lambda: dbx.files_move_v2("/Sorted/2024/a.jpg", "/Album/a.jpg"))
        renamed = dbx.files_move_v2("/Sorted/2024/a.jpg", "/Album/A.jpg", autorename=True)
        folder = dbx.files_move_v2("/Trip", "/Archive/Trip").metadata
        deleted = dbx.files_delete_v2("/Album/a.jpg").metadata
        gone = raises(lambda: dbx.files_get_metadata("/Album/a.jpg"))
        again = raises(lambda: dbx.files_delete_v2("/Album/a.jpg"))
        missing = raises(lambda: dbx.files_move_v2("/nope.jpg", "/x.jpg"))
        done({
            "moved": meta(moved),
            "conflict": conflict["exc"].error.get_to().get_conflict().is_file(),
            "renamed": renamed.metadata.path_display,
            "folder": [type(folder).__name__, folder.path_display],
            "deleted": [type(deleted).__name__, deleted.path_display],
            "gone": gone["exc"].error.get_path().is_not_found(),
            "again": again["exc"].error.get_path_lookup().is_not_found(),
            "missing": missing["exc"].error.get_from_lookup().is_not_found(),
        })
        """,
        emu,
        refresh_token=token,
    )
    assert result["moved"]["path_display"] == "/Sorted/2024/a.jpg"
    assert result["moved"]["id"] == file_id
    assert result["conflict"] is True
    assert result["renamed"] == "/Album/A (1).jpg"
    assert result["folder"] == ["FolderMetadata", "/Archive/Trip"]
    assert result["deleted"] == ["FileMetadata", "/Album/a.jpg"]
    assert result["gone"] and result["again"] and result["missing"]
    assert emu.list_paths() == ["/Album/A (1).jpg", "/Archive/Trip/day1/x.jpg"]
    assert emu.read("/album/a (1).jpg") == b"a"


# --------------------------------------------------------------------------- faults


def test_rate_limit_and_server_errors(emu, token):
    emu.fail_next("files/list_folder", 429, retry_after=7)
    emu.fail_next("/2/files/get_metadata", 500)
    emu.put_file("/Photos/a.jpg", b"a")
    result = run_sdk(
        """
        dbx = client()
        limited = raises(lambda: dbx.files_list_folder(""))
        broken = raises(lambda: dbx.files_get_metadata("/Photos/a.jpg"))
        pause()
        patient = client(max_retries_on_rate_limit=2)
        names = [e.name for e in patient.files_list_folder("/Photos").entries]
        done({"limited": [limited["type"], limited["exc"].backoff,
                          limited["exc"].error.reason.is_too_many_requests()],
              "broken": [broken["type"], broken["exc"].status_code],
              "names": names})
        """,
        emu,
        on_pause=[lambda _: emu.fail_next("files/list_folder", 429, retry_after=0)],
        refresh_token=token,
    )
    assert result == {
        "limited": ["RateLimitError", 7, True],
        "broken": ["InternalServerError", 500],
        "names": ["a.jpg"],
    }
    listings = [r.status for r in emu.request_log if r.route == "files/list_folder"]
    assert listings == [429, 429, 200]


# --------------------------------------------------------------------------- the host trap


def test_sdk_imported_with_other_hosts_is_reported():
    result = run_sdk(
        """
        from tests.support.dropbox_emulator import SdkHostsError, check_sdk_hosts, pin_sdk_hosts
        messages = []
        for check in (lambda: check_sdk_hosts("127.0.0.1:1"), pin_sdk_hosts):
            try:
                check()
            except SdkHostsError as exc:
                messages.append(str(exc))
        done({"api_host": dropbox.session.API_HOST, "messages": messages})
        """,
        env={"DROPBOX_API_HOST": "api.dropboxapi.com"},
    )
    assert result["api_host"] == "api.dropboxapi.com"
    assert len(result["messages"]) == 2
    assert "pin_sdk_hosts()" in result["messages"][0]


def test_pinned_hosts_allow_in_process_sdk_use():
    script = """
    from tests.support.dropbox_emulator import DropboxEmulator, pin_sdk_hosts
    port = pin_sdk_hosts()
    import dropbox as sdk  # first import after pinning: hosts point at 127.0.0.1:port
    with DropboxEmulator(port=port) as emu:
        emu.check_sdk_hosts()
        emu.put_file("/Photos/in-process.jpg", b"x")
        s = sdk.create_session(ca_certs=emu.ca_file)
        s.trust_env = False
        dbx = sdk.Dropbox(oauth2_refresh_token=emu.add_refresh_token("k"), app_key="k",
                          session=s)
        names = [e.name for e in dbx.files_list_folder("/Photos").entries]
    done({"port": port, "host": sdk.session.API_HOST, "names": names})
    """
    # PRELUDE imports dropbox first, so run this one without it.
    prelude = "import json\ndef done(d): print(json.dumps(d))\n"
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_clean_environ(),
        timeout=SCRIPT_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["host"] == f"127.0.0.1:{result['port']}"
    assert result["names"] == ["in-process.jpg"]


# --------------------------------------------------------------------------- lifecycle


def test_stop_closes_the_port_and_idle_connections():
    emulator = DropboxEmulator().start()
    idle = socket.create_connection(("127.0.0.1", emulator.port), timeout=5)
    started = time.monotonic()
    emulator.stop()
    assert time.monotonic() - started < 3
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", emulator.port), timeout=1).close()
    try:  # the server cut the half-open connection: EOF or reset
        assert idle.recv(1) == b""
    except ConnectionResetError:
        pass
    idle.close()
    assert not os.path.exists(emulator.ca_file)


def test_untrusting_client_is_counted_as_tls_failure(emu):
    context = ssl.create_default_context()  # system CAs only: must reject the emulator
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
    deadline = time.monotonic() + 5
    while emu.tls_failures == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emu.tls_failures == 1
