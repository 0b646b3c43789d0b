"""Taking pictures out of e-mails (mail.py) and the sender rules (senders.py): pure functions."""

from __future__ import annotations

import hashlib

from pipeline.sources import mail
from pipeline.sources.senders import SenderRules, authentication_problem, is_allowed, refusal
from tests import mails


def test_extract_finds_attached_inline_nested_forwarded_and_octet_stream_images():
    contents = mail.extract(mails.kitchen_sink(), min_side=200)
    names = [image.filename for image in contents.images]
    assert len(names) == 6, (names, contents.skipped)
    assert "Grüße vom Meer.jpg" in names and "deep.jpg" in names
    assert "forwarded.jpg" in names and "IMG_1.JPG" in names
    assert "Été à la plage.jpg" in names
    assert any(name.startswith("mail-image-") for name in names)   # the nameless inline one
    data = {image.filename: image.data for image in contents.images}
    assert data["IMG_1.JPG"] == mails.picture(5) and data["deep.jpg"] == mails.picture(3)
    assert contents.subject == "Grüße from the sea"


def test_extract_skips_a_text_named_jpg_and_a_logo_with_reasons():
    contents = mail.extract(mails.kitchen_sink(), min_side=200)
    assert any(reason.startswith("x.jpg: not an image") for reason in contents.skipped)
    assert any(reason.startswith("logo.png: 64x64 is smaller") for reason in contents.skipped)
    assert len(contents.skipped) == 2


def test_part_numbers_are_the_same_for_the_same_bytes():
    raw = mails.kitchen_sink()
    first = [(image.index, image.filename) for image in mail.extract(raw).images]
    assert first == [(image.index, image.filename) for image in mail.extract(raw).images]
    assert len({index for index, _ in first}) == len(first)


def test_message_without_message_id_is_keyed_by_a_hash_of_its_bytes():
    raw = mails.with_images([("a.jpg", mails.picture(1))], message_id=None)
    contents = mail.extract(raw)
    assert contents.message_id == ""
    assert contents.message_key == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_oversized_part_is_skipped_and_smaller_ones_kept():
    big, small = mails.picture(7, (960, 640)), mails.picture(8)
    raw = mails.with_images([("big.jpg", big), ("small.jpg", small)])
    contents = mail.extract(raw, max_bytes=len(small) + 1)
    assert [image.filename for image in contents.images] == ["small.jpg"]
    assert "big.jpg" in contents.skipped[0] and "max_attachment_mb" in contents.skipped[0]


def test_deeply_nested_forwards_are_cut_off_without_recursion_error():
    inner = mails.message()
    inner.add_attachment(mails.picture(1), maintype="image", subtype="jpeg", filename="a.jpg")
    for _ in range(mail.MAX_DEPTH + 5):
        wrapper = mails.message(subject="Fwd")
        wrapper.add_attachment(inner)
        inner = wrapper
    contents = mail.extract(inner.as_bytes())
    assert contents.images == []
    assert any("nesting deeper" in reason for reason in contents.skipped)


def test_part_count_is_bounded():
    outer = mails.message()
    for number in range(mail.MAX_PARTS + 20):
        outer.add_attachment(b"x", maintype="application", subtype="octet-stream",
                             filename=f"f{number}.bin")
    contents = mail.extract(outer.as_bytes())
    assert any(f"more than {mail.MAX_PARTS} parts" in reason for reason in contents.skipped)
    looked_at = [reason for reason in contents.skipped if "not an image" in reason]
    assert len(looked_at) == mail.MAX_PARTS - 1   # the text body was the first part


def test_allowlist_takes_addresses_and_whole_domains_but_not_subdomains():
    allowed = ("grandma@family.example", "@cousins.example")
    assert is_allowed("Grandma@Family.example", allowed)
    assert is_allowed("anna@cousins.example", allowed)
    assert not is_allowed("anna@evil.cousins.example", allowed)
    assert not is_allowed("grandpa@family.example", allowed)


RECEIVED_PASS = ("mx.frame.example; dkim=pass (2048-bit key) header.d=family.example "
                 "header.i=@family.example; spf=pass smtp.mailfrom=family.example; "
                 "dmarc=pass (p=NONE) header.from=family.example")


def test_authenticated_sender_needs_a_pass_in_the_topmost_header():
    sender = "grandma@family.example"
    assert authentication_problem(sender, [RECEIVED_PASS]) == ""
    assert "no Authentication-Results" in authentication_problem(sender, [])
    failing = "mx.frame.example; dkim=none; spf=softfail; dmarc=fail header.from=family.example"
    # a forged "pass" further down (written by the sender's side) is not trusted
    assert authentication_problem(sender, [failing, RECEIVED_PASS]) != ""


def test_dkim_pass_counts_only_for_the_from_domain_or_a_parent():
    dkim_other = "mx.frame.example; dkim=pass header.d=spammer.example; dmarc=none"
    assert authentication_problem("grandma@family.example", [dkim_other]) != ""
    dkim_parent = "mx.frame.example; dkim=pass header.d=family.example"
    assert authentication_problem("grandma@mail.family.example", [dkim_parent]) == ""
    dkim_identity = "mx.frame.example; dkim=pass header.i=grandma@family.example"
    assert authentication_problem("grandma@family.example", [dkim_identity]) == ""


def test_authserv_id_pins_the_receiving_server():
    sender = "grandma@family.example"
    assert authentication_problem(sender, [RECEIVED_PASS], "mx.frame.example") == ""
    assert "not from" in authentication_problem(sender, [RECEIVED_PASS], "mx.other.example")


def test_refusal_explains_why():
    rules = SenderRules(("grandma@family.example",), False, True)
    spoofed = mails.message(sender="grandma@family.example")
    assert "no Authentication-Results" in refusal("grandma@family.example", spoofed, rules)
    genuine = mails.message(headers={"Authentication-Results": RECEIVED_PASS})
    assert refusal("grandma@family.example", genuine, rules) == ""
    assert "not in allowed_senders" in refusal("stranger@x.example", genuine, rules)
    anyone = SenderRules((), True, False)
    assert refusal("stranger@x.example", genuine, anyone) == ""
