"""``[library] after_promote`` through the command line: run once per run that promoted
anything, the promoted paths on stdin; a failing command is one warning and never fails
the run; and the picframe recipe of docs/operations.md, run against picframe's own HTTP
request handler.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import tomllib
from pathlib import Path

import pytest

from tests import images
from tests.frame_cli import FrameCli

ROOT = Path(__file__).resolve().parent.parent


def toml_list(words: list[str]) -> str:
    return json.dumps(words)        # a JSON list of strings is a TOML array too


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("WARNING after_promote")]


def test_the_command_gets_the_promoted_paths_once_per_run_that_promoted_any(home, tmp_path):
    told = tmp_path / "told.txt"
    record = "import sys; open(sys.argv[1], 'a').write(sys.stdin.read() + '--\\n')"
    command = [sys.executable, "-c", record, str(told)]
    frame = FrameCli(home, library=f"after_promote = {toml_list(command)}\n")
    home.drop("one.jpg", images.jpeg(images.painting(171, (320, 240))))
    home.drop("two.png", images.png(images.painting(172, (320, 240))))
    assert frame.run()["promoted"] == 2
    block, rest = told.read_text().split("--\n")
    assert rest == ""
    assert sorted(block.splitlines()) == [str(home.pictures / "one.jpg"),
                                          str(home.pictures / "two.png")]
    home.drop("one again.jpg", images.jpeg(images.painting(171, (320, 240))))
    summary = frame.run()                                   # a duplicate: nothing promoted
    assert summary["promoted"] == 0 and summary["duplicates"] == 1
    frame.run()                                             # nothing at all
    assert told.read_text().count("--\n") == 1


@pytest.mark.parametrize("command, timeout, said", [
    (["sh", "-c", "echo frame is off >&2; exit 7"], 30, "exited with status 7: frame is off"),
    (["/nonexistent/frame-notify"], 30, "cannot run /nonexistent/frame-notify: No such file"),
    (["sh", "-c", "sleep 30"], 0.5, "did not finish within 0.5 s; stopped it"),
])
def test_a_failing_command_is_one_warning_and_never_fails_the_run(home, command, timeout, said):
    frame = FrameCli(home, library=f"after_promote = {toml_list(command)}\n"
                                   f"after_promote_timeout = {timeout}\n")
    home.drop("photo.jpg", images.jpeg(images.painting(173, (320, 240))))
    result = frame("run", "--json")
    assert result.code == 0 and result.json()["promoted"] == 1
    [warning] = warnings_of(result.stderr)
    assert said in warning and warning.endswith("(the run is not affected)")
    assert home.files(home.pictures) == ["photo.jpg"]


def test_a_command_that_is_not_a_list_is_a_configuration_error(home):
    frame = FrameCli(home, library='after_promote = "curl http://frame"\n')
    result = frame("run", check=False)
    assert result.code == 2
    assert result.stderr.strip() == (f"error: {frame.config}: [library] after_promote: expected "
                                     'a list of strings, got "curl http://frame"')


class RecordingFrame:
    """Stands in for picframe's Controller behind picframe's real HTTP interface: the
    interface finds its settable properties the way it finds the real one's, and this
    records what the request set (the real setter reloads the playlist and moves on)."""

    def __init__(self):
        self.requests: list[tuple[str, object]] = []

    @property
    def subdirectory(self):
        return ""

    @subdirectory.setter
    def subdirectory(self, value):
        self.requests.append(("subdirectory", value))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def documented_recipe() -> list[str]:
    """The after_promote line of the picframe recipe in docs/operations.md."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("## New arrivals on the frame at once (picframe)", 1)[1]
    line = re.search(r"^after_promote = .*$", section, re.MULTILINE).group(0)
    return tomllib.loads(line)["after_promote"]


def test_the_documented_picframe_recipe_sends_a_request_picframes_http_interface_acts_on(
        home, tmp_path):
    from picframe.interface_http import InterfaceHttp

    recipe = documented_recipe()
    assert recipe[:2] == ["sh", "-c"] and "http://127.0.0.1:9000/" in recipe[2]
    port = free_port()
    command = recipe[:2] + [recipe[2].replace("sleep 5", "sleep 0")
                            .replace("127.0.0.1:9000", f"127.0.0.1:{port}")]
    frame_viewer = RecordingFrame()
    server = InterfaceHttp(frame_viewer, str(tmp_path), str(tmp_path), str(tmp_path),
                           port=port)
    try:
        frame = FrameCli(home, library=f"after_promote = {toml_list(command)}\n")
        home.drop("new.jpg", images.jpeg(images.painting(174, (320, 240))))
        result = frame("run", "--json")
    finally:
        server.stop()
        server.server_close()
    assert result.json()["promoted"] == 1 and warnings_of(result.stderr) == []
    assert "after_promote: sh told about 1 new photo(s)" in result.stderr
    assert frame_viewer.requests == [("subdirectory", "")]
