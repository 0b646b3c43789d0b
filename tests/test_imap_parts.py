"""Mail that fits in memory: the structure first, then only the parts that may be pictures.

Against a real Dovecot: what the server sent is read from its own logout lines
(``out=N`` bytes), so "never downloaded" is measured, not assumed.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import quopri
import random
import re

import pytest

from pipeline.sources import mail
from pipeline.sources.mail_parts import Base64Decoder, QuotedPrintableDecoder
from tests import mails
from tests.imap_helpers import wait_for, write_config
from tests.support.dovecot import DovecotServer, Mailbox

USER, PASSWORD = "frame", "Parts-Passw0rd"


@pytest.fixture(scope="module")
def server():
    """A Dovecot of this module's own: the tests read its logout lines for the bytes sent."""
    with DovecotServer(users={USER: PASSWORD}) as instance:
        yield instance


def sent_bytes(server) -> int:
    return sum(int(value) for value in re.findall(r"\bout=(\d+)", server.log()))


def run_measured(home, server, config, *arguments):
    """Run frame-ingest; return (its stderr, the bytes Dovecot sent it)."""
    logouts = server.log().count("Logged out")
    before = sent_bytes(server)
    result = home.run("--config", config, *arguments)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: server.log().count("Logged out") > logouts, "Dovecot's logout line")
    return result.stderr, sent_bytes(server) - before


def staged_origins(home) -> dict[str, str]:
    """origin id -> name of every staged item (``fetch`` leaves them in staging)."""
    found = {}
    for meta in (home.state_dir / "staging").glob("*/meta.json"):
        provenance = json.loads(meta.read_text())["provenance"]
        found[provenance["origin_id"]] = provenance["name"]
    return found


def staged_data(home) -> dict[str, bytes]:
    """name -> bytes of every staged item."""
    return {json.loads((meta.parent / "meta.json").read_text())["provenance"]["name"]:
            (meta.parent / "data").read_bytes()
            for meta in (home.state_dir / "staging").glob("*/meta.json")}


def noisy_jpeg(side: int, seed: int) -> bytes:
    """A JPEG over a megabyte, so that its encoded part spans several fetched chunks."""
    import io
    import numpy as np
    from PIL import Image
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_a_photo_beside_a_huge_video_is_taken_and_the_video_never_downloaded(home, server):
    photo = mails.picture(70, (1200, 800))
    letter = mails.message(subject="the party")
    letter.add_attachment(photo, maintype="image", subtype="jpeg", filename="photo.jpg")
    letter.add_attachment(os.urandom(30_000_000), maintype="video", subtype="quicktime",
                          filename="clip.mov")
    raw = letter.as_bytes()
    server.append(USER, "video", raw, create=True)
    # the message is far over max_message_mb: that limit is for what would be downloaded
    config = write_config(home, Mailbox(server, USER), "video", max_message_mb=5)
    with open(config, "a", encoding="utf-8") as handle:
        handle.write("\n[video]\nenabled = false\n")     # videos are taken by default
    log, sent = run_measured(home, server, config, "run")
    assert home.files(home.pictures) == ["photo.jpg"], log
    assert (home.pictures / "photo.jpg").read_bytes() == photo
    assert "imap: 1 video(s) left at the source: [video] enabled = false" in log
    assert sent < 3 * len(photo) < len(raw) / 10, sent   # the photo's part, and headers
    assert server.uids(USER, "video") == []                 # acknowledged


def test_the_text_body_and_parts_taken_before_are_not_downloaded_again(home, server):
    body = "A long letter from grandma.\n" * 40_000        # about 1 MB of text
    letter = mails.message(subject="news")
    letter.set_content(body)
    letter.add_attachment(mails.picture(71), maintype="image", subtype="jpeg",
                          filename="garden.jpg")
    raw = letter.as_bytes()
    server.append(USER, "letter", raw, create=True)
    config = write_config(home, Mailbox(server, USER), "letter", processed_folder="", mark_seen=False)
    _, sent = run_measured(home, server, config, "fetch", "imap")
    assert list(staged_origins(home).values()) == ["garden.jpg"]
    assert sent < len(raw) / 5, sent
    with server.client(USER) as imap:   # the folder rebuilt: every message looked at again
        imap.delete_folder("letter")
    server.append(USER, "letter", raw, create=True)
    log, sent = run_measured(home, server, config, "fetch", "imap")
    assert "UIDVALIDITY changed" in log and len(staged_origins(home)) == 1
    assert sent < 20_000, sent                               # headers and structure only


def test_parts_keep_the_numbers_of_the_whole_message_reading(home, server):
    raw = mails.kitchen_sink()
    server.append(USER, "numbers", raw, create=True)
    config = write_config(home, Mailbox(server, USER), "numbers")
    log, _ = run_measured(home, server, config, "fetch", "imap")
    assert "reading it whole" not in log
    contents = mail.extract(raw, min_side=200)
    expected = {f"{contents.message_key}#{image.index}": image.filename
                for image in contents.images}
    assert staged_origins(home) == expected and len(expected) == 6
    assert "x.jpg: not an image" in log and "logo.png: 64x64" in log


def test_a_forwarded_message_that_is_only_a_photo_is_found_as_read_whole(home, server):
    forwarded = mails.message(sender="uncle@elsewhere.example", subject="Fwd")
    forwarded.set_content(mails.picture(74), maintype="image", subtype="jpeg",
                          filename="only.jpg")                   # no multipart inside
    outer = mails.message(subject="from uncle")
    outer.add_attachment(forwarded)
    outer.add_attachment(mails.picture(75), maintype="image", subtype="jpeg",
                         filename="after.jpg")
    raw = outer.as_bytes()
    server.append(USER, "forward", raw, create=True)
    config = write_config(home, Mailbox(server, USER), "forward")
    log, _ = run_measured(home, server, config, "fetch", "imap")
    assert "reading it whole" not in log
    contents = mail.extract(raw)
    expected = {f"{contents.message_key}#{image.index}": image.filename
                for image in contents.images}
    assert staged_origins(home) == expected
    assert sorted(expected.values()) == ["after.jpg", "only.jpg"]
    assert staged_data(home)["only.jpg"] == mails.picture(74)


def test_quoted_printable_and_multi_chunk_base64_parts_arrive_bit_for_bit(home, server):
    big = noisy_jpeg(1100, 1)                               # base64 spans 2+ chunks
    small = noisy_jpeg(400, 2)                              # quoted-printable: 3x its size
    assert len(big) > 1_100_000
    letter = mails.message()
    letter.add_attachment(big, maintype="image", subtype="jpeg", filename="big.jpg")
    letter.add_attachment(small, maintype="application", subtype="octet-stream",
                          filename="IMG_2.JPG", cte="quoted-printable")
    server.append(USER, "encodings", letter.as_bytes(), create=True)
    config = write_config(home, Mailbox(server, USER), "encodings")
    result = home.run("--config", config, "run", check=True)
    assert home.files(home.pictures) == ["IMG_2.JPG", "big.jpg"], result.stderr
    assert (home.pictures / "big.jpg").read_bytes() == big
    assert (home.pictures / "IMG_2.JPG").read_bytes() == small


def test_a_structure_python_reads_differently_is_read_whole(home, server):
    photo = base64.encodebytes(mails.picture(72)).decode().replace("\n", "\r\n")
    raw = ("From: " + mails.FAMILY + "\r\nTo: frame@family.example\r\n"
           "Subject: Returned mail\r\nMessage-ID: <bounce-1@family.example>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
           "report-type=delivery-status; boundary=\"BB\"\r\n\r\n"
           "--BB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
           "--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
           "Reporting-MTA: dns; mx.family.example\r\n\r\n"
           "Final-Recipient: rfc822; nobody@family.example\r\nAction: failed\r\n"
           "--BB\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n"
           "Content-Disposition: attachment; filename=\"kept.jpg\"\r\n\r\n"
           + photo + "--BB--\r\n").encode()
    server.append(USER, "bounce", raw, create=True)
    config = write_config(home, Mailbox(server, USER), "bounce")
    log, sent = run_measured(home, server, config, "fetch", "imap")
    # Python makes a list of the status's header blocks, a server one part: numbers differ
    assert "a message/delivery-status part" in log and "reading it whole" in log
    contents = mail.extract(raw)
    assert staged_origins(home) == {f"{contents.message_key}#{image.index}": image.filename
                                    for image in contents.images}
    assert list(staged_origins(home).values()) == ["kept.jpg"]
    assert sent >= len(raw)


def test_without_a_message_id_the_whole_message_is_read_within_max_message_mb(home, server):
    photo = mails.picture(73)
    small = mails.with_images([("small.jpg", photo)], message_id=None)
    letter = mails.message(message_id=None)
    letter.add_attachment(photo, maintype="image", subtype="jpeg", filename="beside.jpg")
    letter.add_attachment(os.urandom(3_000_000), maintype="video", subtype="mp4",
                          filename="clip.mp4")
    for raw in (small, letter.as_bytes()):
        server.append(USER, "noid", raw, create=True)
    config = write_config(home, Mailbox(server, USER), "noid", max_message_mb=1)
    log, sent = run_measured(home, server, config, "fetch", "imap")
    as_served = small.replace(b"\n", b"\r\n")               # Dovecot serves CRLF lines
    assert list(staged_origins(home)) == \
        [f"{mail.extract(as_served).message_key}#2"]         # keyed by the bytes' hash
    assert log.count("no Message-ID; reading it whole") == 2
    assert "more than max_message_mb (1 MiB); left in noid unread" in log
    assert len(small) <= sent < 1_000_000, sent              # the big one not fetched
    assert len(server.uids(USER, "noid")) == 1               # left for a person


@pytest.mark.parametrize("seed", range(5))
def test_chunked_decoders_give_what_decoding_at_once_gives(seed):
    generator = random.Random(seed)
    data = generator.randbytes(generator.randrange(0, 50_000))
    for encoded, decoder, expected in (
            (base64.encodebytes(data).replace(b"\n", b"\r\n"), Base64Decoder(), data),
            (quopri.encodestring(data).replace(b"\n", b"\r\n"), QuotedPrintableDecoder(),
             binascii.a2b_qp(quopri.encodestring(data).replace(b"\n", b"\r\n")))):
        cuts = sorted(generator.sample(range(len(encoded) + 1), min(20, len(encoded) + 1)))
        pieces = [encoded[start:end] for start, end in zip([0] + cuts, cuts + [len(encoded)])]
        decoded = b"".join(decoder.feed(piece) for piece in pieces) + decoder.finish()
        assert decoded == expected
