"""Hostile mail: spoofed senders, MIME fuzzing, and odd messages through a real Dovecot.

Spoofing cases the sender rules must refuse (beyond the basic ones in test_imap_mail.py):
forged Authentication-Results below the receiving server's, display-name tricks, two From
headers, lookalike and sibling domains. The MIME extractor is fuzzed with hypothesis (it
must never raise and must return only image parts), and a message with duplicate names,
one nested 50 deep and one of 1,000 parts go through a real run.
"""

from __future__ import annotations

import io
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.sources import mail
from pipeline.sources.senders import SenderRules, refusal
from tests import mails
from tests.imap_helpers import write_config

FAMILY = "grandma@family.example"
RECEIVED_FAIL = ("mx.frame.example; dkim=fail header.d=family.example; spf=fail; "
                 "dmarc=fail header.from=family.example")
FORGED_PASS = ("mx.frame.example; dkim=pass header.d=family.example; "
               "dmarc=pass header.from=family.example")


def raw_mail(from_lines: list[str], authentication: list[str] = ()) -> bytes:
    head = "".join(f"Authentication-Results: {value}\r\n" for value in authentication)
    head += "".join(f"From: {value}\r\n" for value in from_lines)
    return (head + "To: frame@family.example\r\nSubject: hi\r\n\r\nLook!\r\n").encode()


def verdict(raw: bytes, allowed=(FAMILY,), authenticated=False, authserv_id="") -> str:
    contents = mail.extract(raw)
    rules = SenderRules(tuple(allowed), False, authenticated, authserv_id)
    return refusal(contents.sender, contents.message, rules)


@pytest.mark.parametrize("from_lines", [
    ['"grandma@family.example" <evil@x.example>'],
    ["grandma@family.example <evil@x.example>"],
    ["<grandma@family.example> <evil@x.example>"],
    ["=?utf-8?q?=3Cgrandma=40family.example=3E?= <evil@x.example>"],
    ["grandma@family.example", "evil@x.example"],              # two From headers
    ["evil@x.example", "grandma@family.example"],
    ['"Grandma" <grandma@family.example>, <evil@x.example>'],
    ["grandma@family.example.evil.example"],
    ["grandma@famiIy.example"],                                 # capital I for l
    ["grandma@f\u0430mily.example"],                            # Cyrillic a
    ["grandma@evil-family.example"],
    ["evil@x.example (grandma@family.example)"],
], ids=lambda lines: " / ".join(lines)[:40])
def test_display_name_and_lookalike_tricks_are_refused(from_lines):
    assert verdict(raw_mail(from_lines)) != ""


@pytest.mark.parametrize("sender", ["anna@evil-family.example", "anna@evilfamily.example",
                                    "anna@sub.family.example", "anna@family.example.com"])
def test_a_domain_entry_covers_that_domain_only(sender):
    assert verdict(raw_mail([sender]), allowed=("@family.example",)) != ""
    assert verdict(raw_mail(["anna@family.example"]), allowed=("@family.example",)) == ""


@pytest.mark.parametrize("from_line", ['"Grandma" <grandma@family.example>',
                                       '"grandma@family.example" <grandma@family.example>',
                                       "=?utf-8?q?Gro=C3=9Fmutter?= <Grandma@Family.example>"])
def test_honest_senders_still_pass(from_line):
    assert verdict(raw_mail([from_line])) == ""


@pytest.mark.parametrize("headers, authserv_id", [
    ([RECEIVED_FAIL, FORGED_PASS], ""),                 # forged pass below the real fail
    ([RECEIVED_FAIL, FORGED_PASS], "mx.frame.example"),
    (["mx.other.example; dmarc=pass header.from=family.example"], "mx.frame.example"),
    (["mx.frame.example; dmarc=pass header.from=evil.example"], ""),
    (["mx.frame.example; dkim=pass header.d=example"], ""),           # a bare TLD signer
    (["mx.frame.example; dkim=pass header.d=family.example.evil.example"], ""),
    (["mx.frame.example; dkim=fail (dkim=pass header.d=family.example) "
      "header.d=family.example"], ""),                  # a pass hidden in a comment
    (["mx.frame.example; dmarc=passed header.from=family.example"], ""),
])
def test_forged_or_misaligned_authentication_results_are_refused(headers, authserv_id):
    raw = raw_mail([FAMILY], headers)
    assert verdict(raw, authenticated=True, authserv_id=authserv_id) != ""


def test_the_receiving_servers_pass_on_top_is_accepted():
    raw = raw_mail([FAMILY], [FORGED_PASS, RECEIVED_FAIL])   # here the pass is the real one
    assert verdict(raw, authenticated=True, authserv_id="mx.frame.example") == ""


# ----------------------------------------------------------------------------- fuzzing

PICTURES = [mails.picture(seed, size=(64, 48)) for seed in (1, 2)]
PAYLOADS = st.one_of(st.sampled_from(PICTURES), st.binary(max_size=300),
                     st.sampled_from([b"", b"\xff\xd8\xff\xe0", PICTURES[0][:200],
                                      b"<html>x</html>"]))
TYPES = st.sampled_from([("image", "jpeg"), ("image", "png"), ("application", "octet-stream"),
                         ("text", "plain"), ("message", "rfc822"), ("image", "gif")])
NAMES = st.one_of(st.none(), st.text(max_size=30),
                  st.sampled_from(["IMG_1.jpg", "../../x.jpg", "a\x00b.png", "=?x?q?y?="]))


def leaf(parts: tuple) -> EmailMessage:
    (maintype, subtype), name, payload = parts
    part = EmailMessage()
    if maintype == "message":
        maintype, subtype = "application", "octet-stream"
    if maintype == "text":
        part.set_content(payload.decode("latin-1"), subtype=subtype)
    else:
        part.set_content(payload, maintype=maintype, subtype=subtype)
    if name:
        try:
            part.add_header("Content-Disposition", "attachment", filename=name)
        except (ValueError, TypeError):
            pass
    return part


def container(children: list) -> EmailMessage:
    outer = EmailMessage()
    outer["From"] = FAMILY
    outer.make_mixed()
    for child in children:
        outer.attach(child)
    return outer


TREES = st.recursive(st.tuples(TYPES, NAMES, PAYLOADS).map(leaf),
                     lambda inner: st.lists(inner, min_size=1, max_size=4).map(container),
                     max_leaves=12)


def is_image(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)):
            return True
    except Exception:
        return False


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_the_extractor_never_raises_on_arbitrary_bytes(raw):
    contents = mail.extract(raw)
    assert all(is_image(part.data) for part in contents.images)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREES, st.randoms(use_true_random=False))
def test_the_extractor_returns_only_the_image_parts_of_any_structure(tree, rng):
    message = tree if isinstance(tree, EmailMessage) and tree.is_multipart() \
        else container([tree])
    raw = message.as_bytes()
    if rng.random() < 0.3:                      # and the same, damaged somewhere
        cut = rng.randrange(len(raw))
        raw = raw[:cut] + bytes([rng.randrange(256)]) + raw[cut + 1:]
    contents = mail.extract(raw)
    for part in contents.images:
        assert is_image(part.data)
        assert part.data in PICTURES or mail.identify(part.data) is not None


# ----------------------------------------------------------------------------- end to end


def nested(depth: int, picture: bytes) -> bytes:
    inner = mails.message(subject=f"level {depth}")
    inner.add_attachment(picture, maintype="image", subtype="jpeg", filename="deep.jpg")
    for level in range(depth):
        wrapper = mails.message(subject=f"Fwd {level}")
        wrapper.add_attachment(inner)
        inner = wrapper
    return inner.as_bytes()


def many_parts(count: int, picture: bytes) -> bytes:
    letter = mails.message(subject="many parts")
    letter.add_attachment(picture, maintype="image", subtype="jpeg", filename="first.jpg")
    for number in range(count - 2):
        letter.add_attachment(b"x", maintype="application", subtype="octet-stream",
                              filename=f"f{number}.bin")
    return letter.as_bytes()


def test_duplicate_names_deep_nesting_and_a_thousand_parts_each_get_an_outcome(home, mailbox):
    pictures = [mails.picture(seed) for seed in (700, 701, 702, 703, 704)]
    mailbox.create_folder("Odd")
    mailbox.append("Odd", mails.with_images([("IMG_0001.jpg", pictures[0]),
                                             ("IMG_0001.jpg", pictures[1])]))
    mailbox.append("Odd", nested(50, pictures[2]))
    mailbox.append("Odd", many_parts(1000, pictures[3]))
    mailbox.append("Odd", mails.with_images([("after.jpg", pictures[4])]))
    config = write_config(home, mailbox, "Odd")
    result = home.run("--config", config, "run")
    assert result.returncode == 0, result.stderr
    assert sorted(home.files(home.pictures)) == ["IMG_0001 (2).jpg", "IMG_0001.jpg",
                                                 "after.jpg", "first.jpg"]
    assert {(home.pictures / name).read_bytes() for name in home.files(home.pictures)} == \
        {pictures[0], pictures[1], pictures[3], pictures[4]}
    assert "nesting deeper than" in result.stderr
    assert f"more than {mail.MAX_PARTS} parts" in result.stderr
    assert mailbox.uids("Odd") == []            # every message was filed
