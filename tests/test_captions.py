"""Captions from the sender ([captions]): through the command line, from every source, read
back with picframe's own metadata reader and with exiftool (docs/captions.md)."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from pipeline import captions, embed
from pipeline.config import parse_config
from pipeline.errors import ConfigError
from pipeline.items import Provenance
from pipeline.sources import mail
from tests import images, mails
from tests.conftest import error_lines
from tests.imap_helpers import toml_value, write_config

GREETING = "Grüße von Oma 👵"
OMA = "Oma Erna <grandma@family.example>"


# --- readers: picframe's and exiftool's -------------------------------------------------

def picframe_reads(path: Path) -> tuple[str | None, str | None]:
    from picframe.get_image_meta import GetImageMeta
    meta = GetImageMeta(str(path))
    return meta.get_exif("IPTC Object Name"), meta.get_exif("IPTC Caption/Abstract")


def exiftool_reads(*paths: Path) -> dict | list[dict]:
    result = subprocess.run(["exiftool", "-j", "-Headline", "-Title", "-Description",
                             "-ObjectName", "-Caption-Abstract", "-CodedCharacterSet",
                             "-Orientation#", "-Rating", *map(str, paths)],
                            capture_output=True, text=True, check=True)
    found = json.loads(result.stdout)
    for entry in found:
        entry.pop("SourceFile")
    return found[0] if len(paths) == 1 else found


def segments(data: bytes) -> tuple[dict[bytes, bytes], bytes]:
    """A JPEG's APPn payloads by their signature, and everything from the SOS on (read
    here independently of pipeline/embed.py)."""
    found, position = {}, 2
    while data[position + 1] != 0xDA:
        length = struct.unpack(">H", data[position + 2:position + 4])[0]
        payload = data[position + 4:position + 2 + length]
        found.setdefault(bytes([data[position + 1]]) + payload[:12], payload)
        position += 2 + length
    return found, data[position:]


def camera_jpeg(seed: int) -> bytes:
    """A JPEG as a phone makes it: EXIF (orientation 6), an ICC profile."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    images.photo(seed).resize((360, 240)).save(buffer, "JPEG", quality=88, icc_profile=icc,
                                               exif=images.camera_exif(6).tobytes())
    return buffer.getvalue()


def write_toml(home, sections: dict[str, dict]) -> str:
    lines = []
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in keys.items()]
        lines.append("")
    path = home.path / "config.toml"
    path.write_text("\n".join(lines))
    return str(path)


def folder_config(home, method: str = "similar", **caption_keys) -> str:
    return write_toml(home, {
        "sources.folder": {"enabled": True, "settle_seconds": 0},
        "dedupe": {"method": method},
        "captions": {"enabled": True, **caption_keys}})


def only(folder: Path) -> Path:
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert len(files) == 1, files
    return files[0]


# --- templates and the body line (pure) ---------------------------------------------------

def test_a_template_leaves_no_dangling_separator_around_an_empty_field():
    values = {"sender_name": "Oma", "subject": "", "body": "Am Strand", "date": "2026-12-01"}
    assert captions.render("{sender_name} – {subject}", values) == "Oma"
    assert captions.render("{subject} – {sender_name}", values) == "Oma"
    assert captions.render("{sender_name}, {subject}, {date}", values) == "Oma, 2026-12-01"
    assert captions.render("Von {subject}", values) == ""
    assert captions.render("Von {subject}: {body}", values) == "Von Am Strand"
    assert captions.render("  {sender_name}   sagt  {body} ", values) == "Oma sagt Am Strand"
    assert captions.render("Familie", values) == "Familie"
    assert captions.cut("Grüße von Oma aus dem Urlaub", 16) == "Grüße von Oma…"
    assert captions.cut("Donaudampfschifffahrt", 8) == "Donauda…"
    assert len(captions.cut("x " * 300, 200)) <= 200


def test_the_body_line_leaves_out_quotes_attributions_and_signatures():
    assert mail.first_line("\n\n  Schöne Grüße aus Wien!  \nZweite Zeile\n") == \
        "Schöne Grüße aus Wien!"
    assert mail.first_line("On Mon, 1 Dec 2026, Tom wrote:\n> Hallo\n>> alt\n\nDanke!\n") == \
        "Danke!"
    assert mail.first_line("Am 1.12.2026 schrieb Tom:\n> x\nBussi") == "Bussi"
    assert mail.first_line("-- \nErna Huber\nTel 123") == ""
    assert mail.first_line("> only quoted\n\n-- \nsig") == ""
    assert mail.first_line("\n-----Original Message-----\nFrom: x") == ""


def test_an_item_staged_before_captions_existed_still_gets_its_fields():
    old = {"source": "imap", "origin_id": "m#2", "name": "IMG_1.jpg",
           "received": "2026-11-20T10:30:00+01:00", "sender": "grandma@family.example",
           "subject": "Zoo", "extra": {"from": OMA, "folder": "INBOX", "uid": 3}}
    values = captions.fields(Provenance.from_dict(old))
    assert values == {"sender_name": "Oma Erna", "sender": "grandma@family.example",
                      "subject": "Zoo", "body": "", "date": "2026-11-20", "source": "imap",
                      "folder": "", "filename": "IMG_1.jpg"}
    dropbox = captions.fields(Provenance("dropbox", "id:1", "a.jpg", sender="Dropbox /F",
                                         subject="", received="2026-10-01T00:00:00+00:00"))
    assert dropbox["sender_name"] == dropbox["sender"] == "" and dropbox["date"] == "2026-10-01"


def test_a_template_with_an_unknown_field_is_a_config_error_naming_the_key(home):
    config = folder_config(home, caption="{sender_name} {mood}")
    result = home.run("--config", config, "run")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert f"{config}: [captions] caption: unknown field {{mood}}" in line, line
    with pytest.raises(ConfigError, match=r"x\.toml: \[captions\] title: not a valid template"):
        parse_config({"captions": {"enabled": True, "title": "{subject"}}, "x.toml")
    parse_config({"captions": {"enabled": False, "title": "{subject"}}, "x.toml")  # unused


def test_an_mpo_keeps_its_second_picture_when_captioned(tmp_path):
    left, right = Image.new("RGB", (64, 48), (200, 10, 10)), Image.new("RGB", (64, 48),
                                                                      (10, 10, 200))
    buffer = io.BytesIO()
    left.save(buffer, "MPO", save_all=True, append_images=[right])
    written = embed.write(buffer.getvalue(), "MPO", embed.Texts(GREETING, "Oma"), False)
    path = tmp_path / "stereo.jpg"
    path.write_bytes(written.data)
    stereo = Image.open(path)
    assert (stereo.format, stereo.n_frames) == ("MPO", 2)
    stereo.seek(1)
    assert stereo.convert("RGB").getpixel((5, 5))[2] > 190          # the right picture
    assert picframe_reads(path) == (GREETING, "Oma")


def test_old_latin1_iptc_is_kept_as_utf8_and_broken_xmp_is_left_alone(tmp_path):
    plain = mails.picture(46)
    latin = "Café am Meer".encode("cp1252")
    iptc = b"\x1c\x02\x00\x00\x02\x00\x04" + b"\x1c\x02\x5a" + \
        struct.pack(">H", len(latin)) + latin           # 2:90 City, no 1:90: not UTF-8
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc + \
        b"\x00" * (len(iptc) % 2)
    app13 = b"Photoshop 3.0\x00" + resource
    broken = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><unclosed>"
    extra = b"".join(b"\xff" + marker + struct.pack(">H", len(payload) + 2) + payload
                     for marker, payload in ((b"\xe1", broken), (b"\xed", app13)))
    data = plain[:2] + extra + plain[2:]
    path = tmp_path / "old.jpg"
    path.write_bytes(embed.write(data, "JPEG", embed.Texts(GREETING, "Oma"), False).data)
    found = exiftool_reads(path)
    assert found["ObjectName"] == GREETING and found["Caption-Abstract"] == "Oma"
    city = subprocess.run(["exiftool", "-j", "-City", str(path)], capture_output=True,
                          text=True, check=True)
    assert json.loads(city.stdout)[0]["City"] == "Café am Meer"      # 2:90, now UTF-8
    assert broken in path.read_bytes()                               # left as it was
    assert picframe_reads(path) == (GREETING, "Oma")


# --- the folder inbox: JPEG byte for byte, duplicates, resweep, listing ---------------------

def test_a_captioned_jpeg_keeps_its_pixels_exif_and_icc_and_stays_the_same_photo(home):
    original = camera_jpeg(41)
    path = home.drop("Urlaub/Wien/beach.jpg", original)
    stamp = datetime(2026, 8, 14, 12, 0).timestamp()
    os.utime(path, (stamp, stamp))
    config = folder_config(home, method="exact", title="{folder}", caption="{filename} {date}")
    home.run("--config", config, "run", check=True)
    filed = only(home.pictures)
    assert picframe_reads(filed) == ("Urlaub/Wien", "beach.jpg 2026-08-14")
    assert exiftool_reads(filed) == {
        "Headline": "Urlaub/Wien", "Title": "Urlaub/Wien", "ObjectName": "Urlaub/Wien",
        "Description": "beach.jpg 2026-08-14", "Caption-Abstract": "beach.jpg 2026-08-14",
        "CodedCharacterSet": "UTF8", "Orientation": 6}
    before, scan_before = segments(original)
    after, scan_after = segments(filed.read_bytes())
    assert scan_after == scan_before                              # entropy-coded data
    exif_key, icc_key = b"\xe1Exif\x00\x00", b"\xe2ICC_PROFILE"
    for signature in (exif_key, icc_key):
        [old] = [value for key, value in before.items() if key.startswith(signature)]
        [new] = [value for key, value in after.items() if key.startswith(signature)]
        assert new == old                                         # byte for byte
    # the uncaptioned original sent again is an exact duplicate (and for similar: the
    # next test)
    home.drop("again/beach.jpg", original)
    home.run("--config", config, "run", check=True)
    assert home.files(home.pictures) == [filed.name]
    [line] = home.run("--config", config, "quarantine", "list", check=True).stdout.splitlines()
    assert f"duplicate of {filed.name}  (exact" in line, line
    assert 'title "again"  caption "beach.jpg 20' in line, line
    # the nightly pass finds nothing to do and leaves the captioned file as it is
    captioned = filed.read_bytes()
    resweep = home.run("--config", config, "resweep", "--json", check=True)
    assert json.loads(resweep.stdout)["quarantined"] == 0, resweep.stdout
    assert filed.read_bytes() == captioned and home.files(home.pictures) == [filed.name]
    home.run("--config", config, "review", "--output", str(home.path / "r"), check=True)
    page = (home.path / "r" / "index.html").read_text()
    assert "<dt>title</dt><dd>again</dd>" in page and "<dt>caption</dt>" in page


def test_an_existing_title_is_kept_unless_overwrite_and_png_gets_xmp_heic_is_left(home):
    titled = [home.path / "titled.jpg", home.path / "titled2.jpg"]
    for seed, path in enumerate(titled, start=42):
        path.write_bytes(mails.picture(seed))
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-photoshop:Headline=Own",
                    "-IPTC:ObjectName=Own", "-XMP-xmp:Rating=4", *map(str, titled)], check=True)
    home.drop("titled.jpg", titled[0].read_bytes())
    png = images.png(images.photo(43).resize((300, 200)))
    home.drop("drawing.png", png)
    home.drop("phone.heic", images.heic(images.photo(44).resize((128, 96))))
    config = folder_config(home, title="Urlaub {date}", caption="Von {filename}")
    result = home.run("--config", config, "run", check=True)
    assert "phone.heic left uncaptioned: HEIF files are not captioned" in result.stderr
    home.drop("titled2.jpg", titled[1].read_bytes())       # overwrite = true
    home.drop("again/drawing.png", png)                     # the uncaptioned original again
    home.run("--config", folder_config(home, title="Neu", caption="", overwrite=True), "run",
             check=True)
    assert home.files(home.pictures) == ["drawing.png", "phone.heic", "titled.jpg",
                                         "titled2.jpg"]
    [again] = [path for path in home.quarantine.rglob("*.png")]
    assert again.read_bytes() == png                        # [dedupe] method "similar"
    kept, drawn, replaced = (home.pictures / name for name in
                             ("titled.jpg", "drawing.png", "titled2.jpg"))
    title = f"Urlaub {datetime.now().date().isoformat()}"
    assert picframe_reads(kept) == ("Own", "Von titled.jpg")
    assert picframe_reads(drawn) == (title, "Von drawing.png")
    assert picframe_reads(replaced) == ("Neu", None)
    found = exiftool_reads(kept, drawn, replaced, home.pictures / "phone.heic")
    assert found[0]["Headline"] == found[0]["ObjectName"] == "Own"
    assert found[0]["Rating"] == 4                               # the rest of its XMP kept
    assert found[1] == {"Headline": title, "Title": title, "Description": "Von drawing.png"}
    assert found[2]["Headline"] == found[2]["ObjectName"] == "Neu" and found[2]["Rating"] == 4
    assert found[3] == {}
    assert Image.open(drawn).tobytes() == Image.open(io.BytesIO(png)).tobytes()


# --- IMAP, both ways of reading a message ------------------------------------------------

def letter(subject: str, body: str, seed: int, *, message_id: str | None = "") -> bytes:
    message = mails.message(sender=OMA, subject=subject, message_id=message_id)
    message.set_content(body)
    message.add_attachment(mails.picture(seed), maintype="image", subtype="jpeg",
                           filename=f"oma-{seed}.jpg")
    return message.as_bytes()


@pytest.mark.parametrize("message_id", ["", None], ids=["part-by-part", "whole-message"])
def test_mail_captions_come_from_subject_sender_and_body(home, mailbox, message_id):
    body = ("\n\nHier sind wir am See!\nLiebe Grüße\n\nOn Fri, Tom wrote:\n> Schickt Fotos\n"
            "-- \nErna Huber, Wien\n")
    mailbox.append("INBOX", letter(GREETING, "> zitiert\n" + body, 51, message_id=message_id))
    mailbox.append("INBOX", letter("", body, 52, message_id=message_id))
    config = write_config(home, mailbox, "INBOX", processed_folder="")
    with open(config, "a") as handle:
        handle.write('\n[captions]\nenabled = true\ncaption = "{sender_name}: {body} ({date})"\n')
    result = home.run("--config", config, "run", check=True)
    assert "Traceback" not in result.stderr
    assert ("no Message-ID; reading it whole" in result.stderr) == (message_id is None)
    assert picframe_reads(home.pictures / "oma-51.jpg") == (
        GREETING, "Oma Erna: Hier sind wir am See! (2026-11-20)")
    found = exiftool_reads(home.pictures / "oma-52.jpg")
    assert "Headline" not in found and "ObjectName" not in found          # empty subject
    assert found["Caption-Abstract"] == found["Description"] == \
        "Oma Erna: Hier sind wir am See! (2026-11-20)"


# --- Dropbox --------------------------------------------------------------------------------

def test_dropbox_captions_carry_the_sub_folder_and_client_modified_date(home, dropbox):
    dropbox.link(home)
    folder = f"{dropbox.folder}/Family Photos"
    dropbox.emulator.put_file(f"{folder}/Sommer 2026/See.jpg", mails.picture(61),
                              client_modified=datetime(2026, 7, 3, 9, 0, tzinfo=timezone.utc))
    config = write_toml(home, {
        "sources.folder": {"enabled": False},
        "sources.dropbox": {"enabled": True, "app_key": dropbox.app_key, "folder": folder,
                            "ca_file": dropbox.emulator.ca_file, "retries": 2},
        "captions": {"enabled": True, "title": "{folder}",
                     "caption": "{sender_name} {subject} {filename}, {date}"}})
    home.run("--config", config, "run", check=True, extra_env=dropbox.emulator.env())
    assert picframe_reads(home.pictures / "See.jpg") == ("Sommer 2026", "See.jpg, 2026-07-03")
