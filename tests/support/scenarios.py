"""What the crash-safety trials send: small pictures made once, and the sources they go to.

A ``Corpus`` of encoded pictures is built once per test module and shared by every trial;
``choose_inputs`` draws a trial's 6-10 inputs from it (distinct photos, an exact copy, a
re-compressed and a larger copy, bad files). Each *scenario* is one input kind: it knows
the TOML that enables its source, the environment its processes need, and how to place
inputs where that source finds them. Adding an input kind is adding a class here with
``name``, ``config()``, ``env()``, ``accepts(item)``, ``place(home, inputs)`` and
``left_at_source()``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from tests import images


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Input:
    """One file sent to frame-ingest: its name at the source and its exact bytes."""

    name: str
    data: bytes
    kind: str       # photo | copy | recompressed | larger | bad


@dataclass
class Corpus:
    """Small encoded pictures made once and shared by every trial (encoding is the slow part)."""

    photos: list[bytes]
    recompressed: list[bytes]
    larger: list[bytes]
    bad: list[bytes]


def build_corpus(count: int = 12, long_edge: int = 240) -> Corpus:
    pictures = [images.resized(images.photo(500 + seed), long_edge=long_edge)
                for seed in range(count)]
    photos = [images.jpeg(picture, quality=85) for picture in pictures]
    recompressed = [images.jpeg(images.decoded(data), quality=55) for data in photos]
    larger = [images.jpeg(images.resized(picture, 1.5), quality=85) for picture in pictures]
    truncated = photos[0][: len(photos[0]) // 3]
    bad = [b"", truncated, random.Random(7).randbytes(3000),
           b"<!DOCTYPE html><html><body>not a photo</body></html>\n"]
    return Corpus(photos, recompressed, larger, bad)


def choose_inputs(corpus: Corpus, rng: random.Random) -> list[Input]:
    """6-10 inputs: distinct photos, an exact copy, a re-compressed copy, a larger copy
    (which displaces the smaller one), and one or two bad files."""
    chosen = rng.sample(range(len(corpus.photos)), rng.randint(4, 6))
    inputs = [Input(f"IMG_{number:02d}.jpg", corpus.photos[number], "photo") for number in chosen]
    first, second, third = chosen[0], chosen[1], chosen[2]
    inputs.append(Input(f"copy of IMG_{first:02d}.jpg", corpus.photos[first], "copy"))
    if rng.random() < 0.7:
        inputs.append(Input(f"IMG_{second:02d} small.jpg", corpus.recompressed[second],
                            "recompressed"))
    if rng.random() < 0.7:
        inputs.append(Input(f"IMG_{third:02d} big.jpg", corpus.larger[third], "larger"))
    for number in rng.sample(range(len(corpus.bad)), rng.randint(1, 2)):
        inputs.append(Input(f"bad-{number}.jpg", corpus.bad[number], "bad"))
    rng.shuffle(inputs)
    return inputs


# ----------------------------------------------------------------------------- scenarios


class Scenario(Protocol):
    name: str

    def config(self) -> str:
        """TOML to add to the trial's configuration (enable the source and so on)."""

    def env(self) -> dict:
        """Environment variables every frame-ingest process of the trial needs."""

    def accepts(self, item: Input) -> bool:
        """Whether this source can carry ``item`` (Dropbox skips non-images at the source)."""

    def place(self, home, inputs: list[Input]) -> None:
        """Put ``inputs`` where the source will find them."""

    def left_at_source(self) -> list[bytes]:
        """Bytes the source legitimately still holds after the final run (not taken)."""


class FolderScenario:
    """The drop folder: files (some in a subfolder) old enough to count as written."""

    name = "folder"

    def config(self) -> str:
        return "[sources.folder]\nenabled = true\nsettle_seconds = 0\n"

    def env(self) -> dict:
        return {}

    def accepts(self, item: Input) -> bool:
        return True

    def place(self, home, inputs: list[Input]) -> None:
        for number, item in enumerate(inputs):
            home.drop(f"from phone/{item.name}" if number % 3 == 2 else item.name, item.data)

    def left_at_source(self) -> list[bytes]:
        return []


class LibraryScenario:
    """Photos already in Pictures before the run (the catalog signs them; a larger newcomer
    may displace one into quarantine)."""

    name = "library"

    def config(self) -> str:
        return ""

    def env(self) -> dict:
        return {}

    def accepts(self, item: Input) -> bool:
        return item.kind == "photo"

    def place(self, home, inputs: list[Input]) -> None:
        home.pictures.mkdir(parents=True, exist_ok=True)
        for item in inputs:
            (home.pictures / f"old {item.name}").write_bytes(item.data)

    def left_at_source(self) -> list[bytes]:
        return []


@dataclass
class DropboxScenario:
    """A folder of the emulated Dropbox; ``after_ingest`` is drawn per trial."""

    emulator: object
    app_key: str
    folder: str
    after_ingest: str = "keep"
    name: str = "dropbox"
    token: str = ""

    def config(self) -> str:
        return (f'[sources.dropbox]\nenabled = true\napp_key = "{self.app_key}"\n'
                f'folder = "{self.folder}"\nmove_to = "{self.folder} done"\n'
                f'after_ingest = "{self.after_ingest}"\nca_file = "{self.emulator.ca_file}"\n'
                f"retries = 2\ntimeout_seconds = 10\n")

    def env(self) -> dict:
        return dict(self.emulator.env())

    def accepts(self, item: Input) -> bool:
        return item.kind != "bad"

    def place(self, home, inputs: list[Input]) -> None:
        self.token = self.emulator.add_refresh_token(self.app_key)
        home.state_dir.mkdir(parents=True, exist_ok=True)
        token_file = home.state_dir / "dropbox-refresh-token"
        token_file.write_text(self.token + "\n")
        token_file.chmod(0o600)
        self.emulator.make_folder(self.folder)          # it may get no file at all
        for item in inputs:
            self.emulator.put_file(f"{self.folder}/{item.name}", item.data)

    def left_at_source(self) -> list[bytes]:
        return []


@dataclass
class ImapScenario:
    """Messages of one to three pictures each from an allowed sender, in a folder of a real
    Dovecot; the pictures' names repeat across messages."""

    server: object
    user: str
    password: str
    folder: str
    sender: str = "grandma@family.example"
    name: str = "imap"

    def config(self) -> str:
        return (f'[sources.imap]\nenabled = true\nhost = "{self.server.host}"\n'
                f'port = {self.server.port}\nsecurity = "none"\nusername = "{self.user}"\n'
                f'password_file = "{self.password_file}"\nfolder = "{self.folder}"\n'
                f'processed_folder = "processed/{self.folder}"\n'
                f'allowed_senders = ["{self.sender}"]\nmin_image_side = 50\n'
                f"retry_wait_seconds = 0.1\ntimeout_seconds = 10\n")

    password_file: str = ""

    def env(self) -> dict:
        return {}

    def accepts(self, item: Input) -> bool:
        return item.kind != "bad"

    def place(self, home, inputs: list[Input]) -> None:
        from email.message import EmailMessage
        secret = home.path / "imap-password"
        secret.write_text(self.password + "\n")
        secret.chmod(0o600)
        self.password_file = str(secret)
        self.server.create_folder(self.user, self.folder)
        for start in range(0, len(inputs), 3):
            letter = EmailMessage()
            letter["From"], letter["To"] = self.sender, "frame@family.example"
            letter["Subject"] = f"photos {start}"
            letter.set_content("Look!\n")
            for item in inputs[start:start + 3]:
                letter.add_attachment(item.data, maintype="image", subtype="jpeg",
                                      filename="IMG_0001.jpg")   # phones repeat names
            self.server.append(self.user, self.folder, letter.as_bytes())

    def left_at_source(self) -> list[bytes]:
        return []
