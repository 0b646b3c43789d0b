"""Tests for the throwaway Dovecot test server in tests/support/dovecot.py."""

from __future__ import annotations

import socket
import ssl
import time
from datetime import datetime, timezone

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.support import dovecot as dovecot_mod
from tests.support.dovecot import DovecotError, DovecotServer

pytestmark = pytest.mark.skipif(
    dovecot_mod.dovecot_binary() is None, reason="dovecot not installed (apt-get install dovecot-imapd)"
)

MESSAGE = (
    b"From: Grandma <grandma@example.org>\r\n"
    b"To: frame@example.org\r\n"
    b"Subject: Holiday photos\r\n"
    b"Message-ID: <support-test@example.org>\r\n"
    b"\r\n"
    b"Hello from the seaside!\r\n"
)


def _unrelated_ca_pem() -> str:
    """PEM of a freshly generated CA that signed nothing on the server."""
    import trustme

    return trustme.CA().cert_pem.bytes().decode()


@pytest.fixture(scope="module")
def server():
    """One plain-IMAP server shared by this module's tests."""
    with DovecotServer(users={"frame": "secret", "other": "pw2"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def tls_server():
    """A server that also serves implicit TLS with a generated CA."""
    with DovecotServer(users={"frame": "secret"}, tls=True) as srv:
        yield srv


def test_users_added_while_it_runs_log_in_at_once_each_to_their_own_mail(dovecot):
    first = dovecot.add_user("added-first", "pw-first")
    second = dovecot.add_user("added-second", "pw-second")   # within the same second
    uid = first.append("INBOX", MESSAGE)
    assert first.uids("INBOX") == [uid] and second.uids("INBOX") == []
    assert second.folders() == ["INBOX"]
    with pytest.raises(LoginError):
        dovecot.connect("added-second", "pw-first")
    with pytest.raises(ValueError):
        dovecot.add_user("added-first", "another")
    with pytest.raises(ValueError):
        dovecot.add_user("../escape", "pw")


def test_start_and_login(server):
    assert server.host == "127.0.0.1"
    assert server.running
    with IMAPClient(server.host, server.port, ssl=False, timeout=5) as imap:
        imap.login("frame", "secret")
        assert b"MOVE" in imap.capabilities()  # Dovecot's default set
        assert imap.folder_exists("INBOX")


def test_append_and_read_back_with_body_peek(server):
    when = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    uid = server.append("frame", "INBOX", MESSAGE, flags=[r"\Flagged"], msg_time=when)
    assert uid in server.uids("frame", "INBOX")
    with server.client("frame") as imap:
        imap.select_folder("INBOX")
        data = imap.fetch([uid], ["BODY.PEEK[]", "INTERNALDATE"])[uid]
    assert data[b"BODY[]"] == MESSAGE
    assert data[b"INTERNALDATE"].astimezone(timezone.utc) == when
    assert server.flags("frame", "INBOX", uid) == {r"\Flagged"}  # PEEK left \Seen alone


def test_append_create_folder_and_users_are_separate(server):
    uid = server.append("other", "Frames", MESSAGE, create=True)
    assert "Frames" in server.folders("other")
    assert server.uids("other", "Frames") == [uid]
    assert "Frames" not in server.folders("frame")


def test_wrong_password_fails_fast(server):
    started = time.monotonic()
    with pytest.raises(LoginError):
        server.connect("frame", password="wrong")
    # Dovecot's default is 2 s; with auth_failure_delay = 0 only its 0.5 s
    # failure-flush timer remains.
    assert time.monotonic() - started < 1.5


def test_listens_only_on_loopback(server, tls_server):
    assert server.listening_addresses() == {("127.0.0.1", server.port)}
    assert tls_server.listening_addresses() == {
        ("127.0.0.1", tls_server.port),
        ("127.0.0.1", tls_server.imaps_port),
    }


def test_tls_with_generated_ca(tls_server):
    context = ssl.create_default_context(cafile=tls_server.ca_file)
    with IMAPClient("127.0.0.1", tls_server.imaps_port, ssl=True,
                    ssl_context=context, timeout=5) as imap:
        imap.login("frame", "secret")
        assert imap.select_folder("INBOX")[b"EXISTS"] == 0
    uid = tls_server.append("frame", "INBOX", MESSAGE)
    with tls_server.client("frame", tls=True) as imap:
        imap.select_folder("INBOX", readonly=True)
        assert imap.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == MESSAGE


def test_tls_is_really_verified(tls_server):
    """A context that does not trust the generated CA must be refused."""
    untrusting = ssl.create_default_context(cadata=_unrelated_ca_pem())
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient("127.0.0.1", tls_server.imaps_port, ssl=True,
                   ssl_context=untrusting, timeout=5)


def test_capabilities_override_hides_move():
    with DovecotServer(users={"frame": "secret"},
                       capabilities="IMAP4rev1 IDLE UIDPLUS") as srv:
        with srv.client("frame") as imap:
            caps = set(imap.capabilities())
    assert {b"IDLE", b"UIDPLUS"} <= caps
    assert b"MOVE" not in caps


def test_server_starts_where_debian_puts_dovecot_whatever_path_is(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # an ordinary user's PATH: no /usr/sbin
    with DovecotServer(users={"frame": "secret"}) as srv:
        with IMAPClient(srv.host, srv.port, ssl=False, timeout=5) as imap:
            imap.login("frame", "secret")
            assert imap.folder_exists("INBOX")


def test_restart_keeps_mail_and_port(server):
    uid = server.append("frame", "INBOX", MESSAGE)
    port, base_dir = server.port, server.base_dir
    server.restart()
    assert server.running
    assert (server.port, server.base_dir) == (port, base_dir)
    assert uid in server.uids("frame", "INBOX")


def test_close_removes_processes_and_files():
    srv = DovecotServer(users={"frame": "secret"}).start()
    master, base_dir = srv._proc.pid, srv.base_dir
    srv.close()
    assert not srv.running
    assert not base_dir.exists()
    assert dovecot_mod._session_pids(master) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()


def test_startup_failure_reports_dovecot_log(monkeypatch):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        monkeypatch.setattr(dovecot_mod, "free_port", lambda: taken)
        srv = DovecotServer(users={"frame": "secret"})
        try:
            with pytest.raises(DovecotError, match="Address already in use"):
                srv.start()
            assert not srv.running
        finally:
            srv.close()


def test_rejects_values_that_would_break_the_config():
    with pytest.raises(ValueError):
        DovecotServer(users={"a:b": "x"})
    with pytest.raises(ValueError):
        DovecotServer(users={"frame": "secret"}, capabilities="IMAP4rev1\nssl = no")

