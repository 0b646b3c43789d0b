"""The IMAP source end to end: the real command line against a real Dovecot on 127.0.0.1."""

from __future__ import annotations

import json
import re

import pytest

from tests import mails
from tests.imap_helpers import PASSWORD, write_config
from tests.support.dovecot import DovecotServer, free_port

USER = "frame"


@pytest.fixture(scope="module")
def server():
    with DovecotServer(users={USER: PASSWORD}) as instance:
        yield instance


def run_json(home, config, *arguments):
    result = home.run("--config", config, *arguments, "run", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_every_image_of_a_message_reaches_pictures_and_the_mail_is_filed(home, server):
    uid = server.append(USER, "kinds", mails.kitchen_sink(), create=True)
    config = write_config(home, server, "kinds")
    summary, log = run_json(home, config)
    assert summary["fetched"] == 6 and summary["promoted"] == 6, log
    pictures = home.files(home.pictures)
    assert "Grüße vom Meer.jpg" in pictures and "IMG_1.JPG" in pictures
    assert "Été à la plage.jpg" in pictures and "forwarded.jpg" in pictures
    assert (home.pictures / "deep.jpg").read_bytes() == mails.picture(3)
    assert "x.jpg: not an image" in log and "logo.png: 64x64" in log
    assert server.uids(USER, "kinds") == []
    assert server.folders(USER).count("processed.kinds") == 1
    moved = server.uids(USER, "processed.kinds")
    assert len(moved) == 1 and "\\Seen" in server.flags(USER, "processed.kinds", moved[0])
    assert uid  # appended, then moved: the UID in the inbox is gone


def test_ten_images_in_one_message_and_provenance_in_status(home, server):
    pictures = [(f"IMG_{number:04d}.jpg", mails.picture(100 + number)) for number in range(10)]
    server.append(USER, "ten", mails.with_images(pictures, subject="Ten from the zoo"),
                  create=True)
    config = write_config(home, server, "ten")
    summary, _ = run_json(home, config)
    assert summary["promoted"] == 10
    assert home.files(home.pictures) == sorted(name for name, _ in pictures)
    status = home.run("--config", config, "status").stdout
    assert f"imap from {mails.FAMILY}" in status and '"Ten from the zoo"' in status
    # sending them again: quarantined as duplicates, with the sender shown
    server.append(USER, "ten", mails.with_images(pictures[:1], subject="Again"))
    summary, _ = run_json(home, config)
    assert summary["duplicates"] == 1
    listing = home.run("--config", config, "quarantine", "list").stdout
    assert f"imap from {mails.FAMILY}" in listing and '"Again"' in listing
    assert "sent 2026-11-20T10:30:00+00:00 <" in listing
    recent = json.loads(home.run("--config", config, "status", "--json").stdout)["recent"]
    assert recent[0]["message_id"].endswith("@family.example")
    assert recent[0]["received"] == "2026-11-20T10:30:00+00:00"


def test_unknown_and_spoofed_senders_are_refused_once_and_filed_unread(home, server):
    passed = ("mx.frame.example; dkim=pass header.d=family.example; "
              "dmarc=pass header.from=family.example")
    stranger = mails.with_images([("s.jpg", mails.picture(20))], sender="x@stranger.example")
    spoofed = mails.with_images([("f.jpg", mails.picture(21))])
    genuine = mails.with_images([("g.jpg", mails.picture(22))],
                                headers={"Authentication-Results": passed})
    uids = [server.append(USER, "senders", raw, create=True)
            for raw in (stranger, spoofed, genuine)]
    config = write_config(home, server, "senders", require_authenticated_sender=True)
    summary, log = run_json(home, config)
    assert summary["fetched"] == 1 and home.files(home.pictures) == ["g.jpg"]
    assert log.count("refused") == 2
    assert "x@stranger.example is not in allowed_senders" in log
    assert "no Authentication-Results header" in log
    moved = server.uids(USER, "processed.senders")
    assert len(moved) == len(uids)
    seen = [("\\Seen" in server.flags(USER, "processed.senders", uid)) for uid in moved]
    assert seen == [False, False, True]
    _, log = run_json(home, config)
    assert "refused" not in log


def test_oversized_attachment_is_skipped_with_a_line_and_the_rest_taken(home, server):
    big, small = mails.picture(30, (1200, 800)), mails.picture(31)
    assert len(big) > 40_000 > len(small)
    server.append(USER, "big", mails.with_images([("huge.jpg", big), ("ok.jpg", small)]),
                  create=True)
    config = write_config(home, server, "big", max_attachment_mb=0.04)
    summary, log = run_json(home, config)
    assert home.files(home.pictures) == ["ok.jpg"] and summary["fetched"] == 1
    assert len(re.findall(r"huge\.jpg: .* max_attachment_mb", log)) == 1
    assert server.uids(USER, "big") == []  # acknowledged: nothing more will come of it


def test_only_new_uids_are_fetched_whatever_their_seen_flag(home, server):
    first = mails.with_images([("first.jpg", mails.picture(40))])
    server.append(USER, "uids", first, create=True)
    config = write_config(home, server, "uids", processed_folder="", mark_seen=False)
    summary, log = run_json(home, config)
    assert summary["promoted"] == 1 and "1 new message(s)" in log
    second = mails.with_images([("second.jpg", mails.picture(41))])
    server.append(USER, "uids", second, flags=["\\Seen"])  # someone read it already
    summary, log = run_json(home, config)
    assert summary["promoted"] == 1 and "1 new message(s)" in log
    assert home.files(home.pictures) == ["first.jpg", "second.jpg"]
    assert [server.flags(USER, "uids", uid) for uid in server.uids(USER, "uids")] == \
        [set(), {"\\Seen"}]


def test_uidvalidity_change_rescans_without_taking_anything_twice(home, server):
    old = [mails.with_images([(f"old{n}.jpg", mails.picture(50 + n))]) for n in range(2)]
    no_id = mails.with_images([("noid.jpg", mails.picture(52))], message_id=None)
    for raw in old + [no_id]:
        server.append(USER, "renumbered", raw, create=True)
    config = write_config(home, server, "renumbered", processed_folder="")
    summary, _ = run_json(home, config)
    assert summary["promoted"] == 3
    with server.client(USER) as imap:   # the folder is rebuilt: new UIDVALIDITY
        imap.delete_folder("renumbered")
    for raw in old + [no_id, mails.with_images([("new.jpg", mails.picture(53))])]:
        server.append(USER, "renumbered", raw, create=True)
    summary, log = run_json(home, config)
    assert "UIDVALIDITY changed" in log
    assert summary["fetched"] == 1 and summary["promoted"] == 1, log
    assert home.files(home.quarantine) == []


def test_without_move_only_the_processed_uid_is_expunged(home):
    with DovecotServer(users={USER: PASSWORD}, capabilities="IMAP4rev1 IDLE UIDPLUS") as server:
        server.append(USER, "INBOX", mails.with_images([("p.jpg", mails.picture(60))]))
        kept = server.append(USER, "INBOX", mails.message(subject="keep me").as_bytes(),
                             flags=["\\Deleted"])  # someone else's pending deletion
        config = write_config(home, server, "INBOX", processed_folder="done",
                              max_messages_per_run=1)  # leaves the second one alone
        summary, log = run_json(home, config)
        assert summary["promoted"] == 1 and "left for the next run" in log, log
        assert server.uids(USER, "INBOX") == [kept]  # a plain EXPUNGE would have taken it
        assert len(server.uids(USER, "done")) == 1


def test_wrong_password_fails_once_with_a_clear_line_and_never_shows_it(home, server):
    wrong = "WrongHorse-Battery-42"
    failures_before = server.log().count("Password mismatch")
    config = write_config(home, server, "INBOX", password=wrong, retry_attempts=5)
    result = home.run("--config", config, "run")
    assert result.returncode == 1
    assert f"login as {USER} at 127.0.0.1:{server.port} refused" in result.stderr
    assert "check username and password" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert "retry" not in result.stderr
    assert server.log().count("Password mismatch") == failures_before + 1


def test_check_says_ok_or_what_is_wrong(home, server, tmp_path):
    server.create_folder(USER, "checked")
    ok = home.run("--config", write_config(home, server, "checked"), "check")
    assert ok.returncode == 0 and "imap: OK" in ok.stdout and "folder checked" in ok.stdout
    problems = {
        "does not exist": write_config(home, server, "no-such-folder", name="a.toml"),
        "refused: check username": write_config(home, server, "checked", name="b.toml",
                                                password="nope"),
        "cannot connect": write_config(home, server, "checked", name="c.toml",
                                       port=free_port()),
    }
    for expected, config in problems.items():
        result = home.run("--config", config, "check")
        assert result.returncode == 1 and "imap: FAILED" in result.stdout, result
        assert expected in result.stdout, result.stdout
        assert "nope" not in result.stdout + result.stderr


def test_check_over_tls_needs_the_servers_ca(home):
    with DovecotServer(users={USER: PASSWORD}, tls=True) as server:
        keys = {"port": server.imaps_port, "security": "ssl"}
        untrusted = home.run("--config", write_config(home, server, "INBOX", **keys), "check")
        assert untrusted.returncode == 1 and "TLS certificate not trusted" in untrusted.stdout
        trusted = write_config(home, server, "INBOX", name="t.toml", ca_file=server.ca_file,
                               **keys)
        assert home.run("--config", trusted, "check").returncode == 0
        starttls = write_config(home, server, "INBOX", name="s.toml", ca_file=server.ca_file,
                                security="starttls")
        result = home.run("--config", starttls, "check")
        assert result.returncode == 0, result.stdout


def test_unsafe_or_incomplete_settings_are_refused_before_connecting(home, server):
    config = write_config(home, server, "INBOX", host="mail.example.com", allowed_senders=[])
    result = home.run("--config", config, "run")
    assert result.returncode == 2
    assert 'security: "none" would send the password in clear text' in result.stderr
    assert "allowed_senders: empty" in result.stderr
    assert not home.state_dir.exists()


@pytest.mark.parametrize("keys, expected", [
    ({"host": "mail.example.com"}, 'security: "none" would send the password in clear text'),
    ({"allowed_senders": []}, "allowed_senders: empty, so nobody could send photos"),
    ({"username": ""}, "username: empty"),
    ({"password_env": "FRAME_INGEST_IMAP_PASSWORD"},
     "password_file: set exactly one of password_file and password_env (both are set)"),
    ({"password_file": ""},
     "password_file: set exactly one of password_file and password_env (neither is set)"),
    ({"processed_folder": "Rules"}, "processed_folder: must differ from folder"),
])
@pytest.mark.parametrize("command", ["run", "check"])
def test_each_imap_rule_exits_2_with_one_line_and_touches_nothing(home, server, keys,
                                                                  expected, command):
    uid = server.append(USER, "Rules", mails.with_images([("r.jpg", mails.picture(33))]),
                        create=True)
    config = write_config(home, server, "Rules", **keys)
    result = home.run("--config", config, command,
                      extra_env={"FRAME_INGEST_IMAP_PASSWORD": PASSWORD})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: [sources.imap] {expected}")
    assert not home.state_dir.exists() and server.flags(USER, "Rules", uid) == set()
    assert uid in server.uids(USER, "Rules")


def test_a_disabled_imap_source_is_not_checked(home, server):
    config = write_config(home, server, "INBOX", enabled=False, host="mail.example.com",
                          username="", allowed_senders=[])
    assert home.run("--config", config, "run").returncode == 0


def test_message_larger_than_max_message_mb_is_not_fetched_and_left_unread(home, server):
    uid = server.append(USER, "huge", mails.with_images([("h.jpg", mails.picture(32, (960, 640)))]),
                        create=True)
    config = write_config(home, server, "huge", max_message_mb=0.02)
    summary, log = run_json(home, config)
    assert summary["fetched"] == 0 and "more than max_message_mb" in log
    assert server.uids(USER, "huge") == [uid] and server.flags(USER, "huge", uid) == set()
    _, log = run_json(home, config)
    assert "max_message_mb" not in log  # said once, then the UID is passed


def test_message_with_only_a_logo_stages_nothing_and_is_filed(home, server):
    letter = mails.message(subject="Just my signature")
    letter.add_attachment(mails.logo(), maintype="image", subtype="png", filename="logo.png")
    server.append(USER, "logo", letter.as_bytes(), create=True)
    config = write_config(home, server, "logo", password_file="",
                          password_env="FRAME_INGEST_IMAP_PASSWORD")
    result = home.run("--config", config, "run", "--json",
                      extra_env={"FRAME_INGEST_IMAP_PASSWORD": PASSWORD})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["fetched"] == 0 and home.files(home.pictures) == []
    assert "logo.png: 64x64 is smaller than min_image_side" in result.stderr
    assert "holds no image" in result.stderr
    assert server.uids(USER, "logo") == [] and len(server.uids(USER, "processed.logo")) == 1
    missing = home.run("--config", config, "run")
    assert missing.returncode == 1
    assert "FRAME_INGEST_IMAP_PASSWORD (password_env) is not set" in missing.stderr
