"""The web page's defences, through plain HTTP requests to a real `frame-ingest serve`."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from pipeline.locking import instance_lock
from tests.web_support import HOSTILE_NAME, PASSWORD, Client, ids, start_site, stop

PAGES = ["/arrivals", "/quarantine", "/rejected", "/removed", "/senders", "/sources"]
ACTIONS = ["/restore", "/remove", "/undo-removal", "/allow-sender"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = start_site(tmp_path_factory.mktemp("web-security"))
    yield site
    stop(site)


@pytest.fixture
def client(site) -> Client:
    client = site.client()
    assert client.login().status == 303
    return client


def quarantined(site) -> list[str]:
    return site.home.files(site.home.quarantine)


def test_the_password_is_stored_as_a_salted_scrypt_hash_readable_by_the_owner_only(site):
    stored = site.home.state_dir / "web-password"
    text = stored.read_text()
    assert text.startswith("scrypt$16384$8$1$") and PASSWORD not in text
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


def test_a_wrong_password_gets_no_session(site):
    client = site.client(source="127.0.0.3")
    reply = client.login("not the password")
    assert reply.status == 403 and "Wrong password" in reply.text
    assert "frame_session" not in client.cookies
    assert client.get("/arrivals").header("Location").endswith("/login")


def test_login_sets_a_strict_http_only_session_cookie_without_secure_over_plain_http(site):
    client = site.client()
    reply = client.login()
    assert reply.status == 303 and reply.header("Location").endswith("/arrivals")
    cookie = next(value for value in reply.headers.get_all("Set-Cookie")
                  if value.startswith("frame_session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags
    assert client.get("/arrivals").status == 200


def test_the_cookie_is_secure_behind_a_tls_proxy_on_the_pi_and_only_there(site):
    for source, secure in (("127.0.0.1", True), ("127.0.0.2", False)):
        client = site.client(source=source)
        token = client.csrf("/login")
        reply = client.request("POST", "/login", f"csrf={token}&password={PASSWORD}".encode(),
                               {"Origin": f"https://127.0.0.1:{site.port}",
                                "X-Forwarded-Proto": "https",
                                "Content-Type": "application/x-www-form-urlencoded"})
        if not secure:      # the header is dropped: an https Origin is then a foreign one
            assert reply.status == 403
            continue
        cookie = next(value for value in reply.headers.get_all("Set-Cookie")
                      if value.startswith("frame_session="))
        assert "secure" in cookie.lower(), cookie


def test_without_a_session_cookie_every_page_sends_to_login_and_every_action_is_refused(site):
    anonymous = site.client()
    for path in PAGES + ["/preview/1", "/preview/1/matched"]:
        reply = anonymous.get(path)
        assert reply.status == 303 and reply.header("Location").endswith("/login"), path
    token = anonymous.csrf("/login")
    for path in ACTIONS:
        assert anonymous.post(path, {"csrf": token, "id": "1"}).status == 403, path
    assert len(quarantined(site)) == 1


def test_a_post_from_another_origin_or_without_origin_is_refused(site, client):
    token = client.csrf("/quarantine")
    [entry] = ids(client.get("/quarantine"), "/restore")
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{site.port + 1}"):
        reply = client.post("/restore", {"csrf": token, "id": entry}, origin=origin)
        assert reply.status == 403 and "Origin" in reply.text
    assert client.post("/restore", {"csrf": token, "id": entry}, origin=None).status == 403
    assert client.post("/login", {"csrf": token, "password": PASSWORD},
                       origin="http://evil.example").status == 403
    assert len(quarantined(site)) == 1


def test_a_post_with_a_missing_or_wrong_csrf_token_is_refused(site, client):
    [entry] = ids(client.get("/quarantine"), "/restore")
    other = site.client()
    other.login()
    for fields in ({"id": entry}, {"id": entry, "csrf": ""}, {"id": entry, "csrf": "0" * 64},
                   {"id": entry, "csrf": other.csrf("/quarantine")}):
        reply = client.post("/restore", fields)
        assert reply.status == 403 and "CSRF" in reply.text, fields
    assert client.post("/logout", {}).status == 403
    assert len(quarantined(site)) == 1


def test_get_never_acts(site, client):
    [entry] = ids(client.get("/quarantine"), "/restore")
    for path in ACTIONS:
        assert client.get(f"{path}?id={entry}").status == 405, path
    assert len(quarantined(site)) == 1


def test_path_traversal_in_every_parameter_is_refused(site, client):
    token = client.csrf("/quarantine")
    for path in ["/preview/../../../etc/passwd", "/preview/..%2F..%2Fetc%2Fpasswd",
                 "/preview/1%2F..%2F..%2Fconfig.toml", "/preview/-1", "/static/../config.toml",
                 "/static/..%2F..%2F..%2Fconfig.toml", "/static/%2e%2e/app.py",
                 "/../../etc/passwd"]:
        reply = client.get(path)
        assert reply.status in (400, 404) and b"root:" not in reply.body, path
        assert b"[web]" not in reply.body, path
    for page in PAGES:
        for value in ("../../etc/passwd", "1/../2", "%2e%2e", "0", "-1", "1e3"):
            assert client.get(f"{page}?page={value}").status == 400, (page, value)
    for path in ACTIONS:
        for value in ("../../etc/passwd", "1/../1", str(site.home.quarantine), "", "1.0"):
            reply = client.post(path, {"csrf": token, "id": value})
            assert reply.status == 400, (path, value)
    assert len(quarantined(site)) == 1


def test_an_id_that_does_not_exist_is_not_found(site, client):
    token = client.csrf("/quarantine")
    for path in ACTIONS:
        if path == "/undo-removal":
            continue            # the removals module answers for its own ids
        reply = client.post(path, {"csrf": token, "id": "987654"})
        assert reply.status == 404, path
    assert client.get("/preview/987654").status == 404
    [promoted] = ids(client.get("/arrivals"), "/remove")
    assert client.post("/restore", {"csrf": token, "id": promoted}).status == 404


def raw_post(port: int, head: bytes, chunks) -> bytes:
    """Send a request by hand; the server may answer and close before all of it is sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        try:
            raw.sendall(head)
            for chunk in chunks:
                raw.sendall(chunk)
        except OSError:
            pass
        return raw.recv(200)


def test_requests_over_one_mebibyte_are_refused_with_413(site, client):
    token = client.csrf("/quarantine")
    cookie = "; ".join(f"{key}={value}" for key, value in client.cookies.items())
    for path in ("/restore", "/login", "/arrivals"):
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\nOrigin: "
                f"{client.origin}\r\nCookie: {cookie}\r\nContent-Type: application/"
                f"x-www-form-urlencoded\r\nContent-Length: {1024 * 1024 + 100}\r\n\r\n")
        body = [f"csrf={token}&id=1&pad=".encode(), b"a" * (1024 * 1024)]
        assert raw_post(site.port, head.encode(), body).startswith(b"HTTP/1.1 413"), path
    chunk = b"a" * 65536
    chunked = raw_post(site.port, b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n",
                       (b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)))
    assert chunked.startswith(b"HTTP/1.1 413")
    assert len(quarantined(site)) == 1


def test_every_response_forbids_framing_sniffing_and_inline_scripts(site, client):
    for reply in (client.get("/arrivals"), site.client().get("/login"),
                  client.get("/preview/987654"), client.get("/static/style.css")):
        policy = reply.header("Content-Security-Policy")
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert reply.header("X-Content-Type-Options") == "nosniff"
        assert reply.header("X-Frame-Options") == "DENY"
    page = client.get("/arrivals").text
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert 'name="viewport" content="width=device-width' in page


def test_a_hostile_file_name_is_shown_escaped(site, client):
    page = client.get("/rejected").text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#039;.jpg" in page
    assert HOSTILE_NAME not in page and "<img src=x" not in page


def test_a_click_while_a_run_holds_the_lock_says_busy_and_changes_nothing(site, client):
    token = client.csrf("/quarantine")
    [entry] = ids(client.get("/quarantine"), "/restore")
    with instance_lock(site.home.state_dir):
        reply = client.post("/restore", {"csrf": token, "id": entry})
    assert reply.status == 503 and "try again in a minute" in reply.text
    assert len(quarantined(site)) == 1


def test_login_attempts_are_rate_limited_per_address(site):
    guesser = site.client(source="127.0.0.2")
    for attempt in range(5):      # a forged X-Forwarded-For does not make a new address
        token = guesser.csrf("/login")
        reply = guesser.request("POST", "/login", f"csrf={token}&password=guess{attempt}"
                                .encode(), {"Origin": guesser.origin,
                                            "X-Forwarded-For": f"10.0.0.{attempt}",
                                            "Content-Type": "application/x-www-form-urlencoded"})
        assert reply.status == 403
    reply = guesser.login()             # even the right password waits now
    assert reply.status == 429 and "Too many attempts" in reply.text
    assert "frame_session" not in guesser.cookies
    assert site.client().login().status == 303     # another address is not locked out


def test_serve_refuses_to_start_until_a_password_is_set(tmp_path):
    from tests.conftest import make_home
    from tests.web_support import free_port, write_config
    home = make_home(tmp_path / "home")
    config = write_config(home, free_port())
    result = home.run("--config", str(config), "serve", timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: no password for the web page yet; run: frame-ingest --config {config} "
        "web-password"]
    short = subprocess.run([sys.executable, "-m", "pipeline", "--config", str(config),
                            "web-password"], input="short\n", env=home.env, text=True,
                           capture_output=True, timeout=30)
    assert short.returncode == 1 and "too short" in short.stderr
    assert not (home.state_dir / "web-password").exists()
    assert os.access(config, os.R_OK)
