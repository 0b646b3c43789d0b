"""Refused senders on the web page, "Allow this sender", and the refused mail fetched back
from processed_folder by the next run: real Dovecot, real `serve`, real config file."""

from __future__ import annotations

import stat
import tomllib

from tests import mails
from tests.imap_helpers import write_config
from tests.web_support import Site, free_port, ids, serve, set_password, stop

AUNT = "aunt.may@relatives.example"
SUBJECT = 'Our trip <b onclick="x()">&</b>'


def test_allowing_a_refused_sender_rewrites_the_config_and_the_next_run_takes_her_mail(
        home, mailbox):
    mailbox.append("inbox", mails.with_images([("beach.jpg", mails.picture(41))],
                                              sender=f"Aunt May <{AUNT}>", subject=SUBJECT),
                   create=True)
    mailbox.append("inbox", mails.with_images([("cake.jpg", mails.picture(42))]))
    config = home.path / "config.toml"
    write_config(home, mailbox, "inbox")
    port = free_port()
    config.write_text("# the family frame\n" + config.read_text()
                      + f"# who may see the page\n[web]\nenabled = true\n"
                        f'listen = "127.0.0.1:{port}"\n')
    config.chmod(0o640)
    site = Site(home, config, port)
    result = site.run("run")
    assert result.returncode == 0, result.stderr
    assert home.files(home.pictures) == ["cake.jpg"]
    refused = mailbox.uids("processed.inbox")
    assert [("\\Seen" in mailbox.flags("processed.inbox", uid)) for uid in refused] \
        == [False, True]

    set_password(site)
    serve(site)
    try:
        client = site.client()
        client.login()
        page = client.get("/senders")
        assert AUNT in page.text and "Aunt May" in page.text
        assert "Our trip &lt;b onclick=&quot;x()&quot;&gt;&amp;&lt;/b&gt;" in page.text
        [sender] = ids(page, "/allow-sender")
        reply = client.post("/allow-sender", {"csrf": client.csrf("/senders"), "id": sender})
        assert reply.status == 303
        after = client.get("/senders").text
        assert f"{AUNT} may send photos now" in after
        assert "Allowed now: the next run fetches" in after
    finally:
        stop(site)

    text = config.read_text()
    assert text.startswith("# the family frame\n") and "# who may see the page\n" in text
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    allowed = tomllib.loads(text)["sources"]["imap"]["allowed_senders"]
    assert allowed == [mails.FAMILY, AUNT]

    result = site.run("run")
    assert result.returncode == 0, result.stderr
    assert home.files(home.pictures) == ["beach.jpg", "cake.jpg"]
    assert f"{AUNT} is allowed now: 1 refused message(s) moved back" in result.stderr
    assert len(mailbox.uids("processed.inbox")) == 2
    assert all("\\Seen" in mailbox.flags("processed.inbox", uid)
               for uid in mailbox.uids("processed.inbox"))
    again = site.run("run")
    assert "moved back" not in again.stderr and home.files(home.pictures) == \
        ["beach.jpg", "cake.jpg"]
