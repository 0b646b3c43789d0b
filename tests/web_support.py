"""A real `frame-ingest serve` over a real library, and a small HTTP client for it.

``start_site`` builds a HOME, files real photos into it with `frame-ingest run` (one
promoted, a recompressed copy quarantined, a broken file with a hostile name rejected),
sets the password with `frame-ingest web-password` on standard input and starts `serve`
on a free loopback port; ``Client`` speaks plain HTTP to it and keeps its cookies.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from tests import images
from tests.conftest import Home, make_home

PASSWORD = "grandpa's frame 2026"
HOSTILE_NAME = '<img src=x onerror="alert(1)">&\'.jpg'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(home: Home, port: int, extra: str = "") -> Path:
    path = home.path / "config.toml"
    path.write_text(
        "# the family frame: comments must survive the web page's edits\n"
        "[sources.folder]\nsettle_seconds = 0.0\n\n"
        f"[web]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n" + extra)
    path.chmod(0o600)
    return path


@dataclass
class Site:
    home: Home
    config: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, *arguments: str, **options) -> subprocess.CompletedProcess:
        return self.home.run("--config", str(self.config), *arguments, **options)

    def client(self, **options) -> "Client":
        return Client(self.port, **options)


def file_photos(site: Site) -> None:
    """One photo promoted, its recompressed copy quarantined, a broken file rejected."""
    original = images.photo(11)
    site.home.drop("garden.jpg", images.jpeg(original))       # staged first (by name)
    site.home.drop("garden2.jpg", images.jpeg(original, quality=60))
    site.home.drop(HOSTILE_NAME, b"\xff\xd8\xff\xe0 not really a jpeg")
    site.run("run", check=True)
    assert site.home.files(site.home.pictures) == ["garden.jpg"]


def set_password(site: Site, password: str = PASSWORD) -> None:
    result = subprocess.run([sys.executable, "-m", "pipeline", "--config", str(site.config),
                             "web-password"], input=password + "\n", env=site.home.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def start_site(root: Path, extra_config: str = "") -> Site:
    home = make_home(root / "home")
    port = free_port()
    site = Site(home, write_config(home, port, extra_config), port)
    file_photos(site)
    set_password(site)
    serve(site)
    return site


def serve(site: Site) -> None:
    log = open(site.home.path / "serve.log", "ab")
    site.process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(site.config), "serve"],
        env=site.home.env, cwd=site.home.path, stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert site.process.poll() is None, (site.home.path / "serve.log").read_text()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", site.port),
                                                                     timeout=1):
            return
        time.sleep(0.05)  # polling the port, bounded by the deadline
    raise AssertionError("serve did not start listening within 30 s")


def stop(site: Site) -> None:
    if site.process and site.process.poll() is None:
        site.process.terminate()
        try:
            site.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            site.process.kill()
            site.process.wait()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


class Client:
    """Plain HTTP with a cookie jar of its own; POSTs carry this server's Origin unless
    told otherwise."""

    def __init__(self, port: int, source: str = "127.0.0.1"):
        self.port = port
        self.source = source
        self.cookies: dict[str, str] = {}
        self.origin = f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30,
                                                source_address=(self.source, 0))
        sent = dict(headers or {})
        if self.cookies and "Cookie" not in sent:
            sent["Cookie"] = "; ".join(f"{key}={value}" for key, value in self.cookies.items())
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        finally:
            connection.close()
        for value in reply.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            cookie = rest.split(";")[0]
            if cookie and "max-age=0" not in value.lower() and "expires=thu, 01 jan 1970" \
                    not in value.lower():
                self.cookies[name.strip()] = cookie
            else:
                self.cookies.pop(name.strip(), None)
        return reply

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, fields: dict, origin: str | None = "") -> Reply:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if origin is not None:
            headers["Origin"] = origin or self.origin
        return self.request("POST", path, urllib.parse.urlencode(fields).encode(), headers)

    def csrf(self, path: str) -> str:
        """The CSRF token in the forms of ``path``."""
        page = self.get(path)
        match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert match, f"no CSRF field on {path}: {page.status} {page.text[:300]}"
        return match.group(1)

    def login(self, password: str = PASSWORD) -> Reply:
        return self.post("/login", {"csrf": self.csrf("/login"), "password": password})


def ids(page: Reply, action: str) -> list[int]:
    """The ids in the forms that POST to ``action`` on a page."""
    return [int(found) for found in re.findall(
        rf'action="{re.escape(action)}"><input type="hidden" name="csrf" value="[0-9a-f]+">'
        r'<input type="hidden" name="id" value="([0-9]+)">', page.text)]
