"""One Dropbox download, streamed into staging and checked against Dropbox's content_hash.

Why a reader object: ``Staging.stage`` copies a stream chunk by chunk into its temp
directory and renames it into place only when the copy is complete. ``VerifiedDownload``
hands it the response body chunk by chunk while computing the content_hash, and at the end
of the body raises ``ContentMismatch`` if the hash (or the length) is not what Dropbox
promised, so ``stage`` removes its temp directory and nothing half-verified ever counts as
staged. Memory stays at about one chunk whatever the file size.

Why this module does not import the SDK: it works on bytes only (the SDK's response body
comes in through ``dropbox_session.Session.download``), and the content_hash is a published
algorithm of a dozen lines (``ContentHasher``: SHA-256 of each 4 MiB block, then SHA-256 of
the concatenated block digests), so the SDK stays behind its one boundary and this check can
be read and tried without it.

Which files are taken: a file named like an image (a suffix of ``pipeline.formats``) is
always downloaded whole and verified, and the gate judges it (rejected with a reason if it
is none): its first bytes are not verified until the end, so damage there must not decide.
Any other file is taken when its first bytes carry the signature (magic number) of a
format the gate can decode; a video or a PDF therefore costs one chunk of download.
"""

from __future__ import annotations

import hashlib
from typing import Iterator

from pipeline.config import MIB
from pipeline.errors import TransientSourceError

CHUNK = MIB
SNIFF_BYTES = 16
HASH_BLOCK = 4 * MIB

# ISO base media ("ftyp") brands of HEIF/HEIC/AVIF still images (pillow-heif reads them).
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
               b"avif", b"avis"}


def sniff_image_format(prefix: bytes) -> str | None:
    """The image format the first bytes announce (JPEG, PNG, ...), or None."""
    if prefix.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if prefix.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if prefix[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP":
        return "WEBP"
    if prefix[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if prefix[:2] == b"BM" and len(prefix) >= 14:
        return "BMP"
    if prefix[4:8] == b"ftyp" and prefix[8:12] in HEIF_BRANDS:
        return "HEIF"
    return None


class ContentHasher:
    """Dropbox's content_hash, computed as the bytes go by (any chunk sizes)."""

    def __init__(self):
        self.overall = hashlib.sha256()
        self.block = hashlib.sha256()
        self.block_filled = 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.block_filled == HASH_BLOCK:
                self.overall.update(self.block.digest())
                self.block, self.block_filled = hashlib.sha256(), 0
            piece = view[:HASH_BLOCK - self.block_filled]
            self.block.update(piece)
            self.block_filled += len(piece)
            view = view[len(piece):]

    def hexdigest(self) -> str:
        overall = self.overall.copy()
        if self.block_filled:
            overall.update(self.block.digest())
        return overall.hexdigest()


def content_hash(data: bytes) -> str:
    hasher = ContentHasher()
    hasher.update(data)
    return hasher.hexdigest()


class ContentMismatch(TransientSourceError):
    """Raised at the end of a download whose bytes do not match Dropbox's content_hash
    (or its size): the bytes were damaged on the way, so the download is retried."""


class VerifiedDownload:
    """A read()-able view of a streamed download that verifies it when it ends."""

    def __init__(self, first: bytes, rest: Iterator[bytes], *, name: str,
                 expected_hash: str, expected_size: int):
        self.name = name
        self.expected_hash = expected_hash
        self.expected_size = expected_size
        self.hasher = ContentHasher()
        self.size = 0
        self.rest = rest
        self.pending = memoryview(b"")
        self._accept(first)

    def peek(self, size: int) -> bytes:
        """The next ``size`` bytes at most, without consuming them (the sniff)."""
        return bytes(self.pending[:size])

    def _accept(self, chunk: bytes) -> None:
        self.hasher.update(chunk)
        self.size += len(chunk)
        self.pending = memoryview(chunk)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (``-1``: the next chunk); b"" only after the hash checked out."""
        while not self.pending:
            chunk = next(self.rest, None)
            if chunk is None:
                self._verify()
                return b""
            self._accept(chunk)
        count = len(self.pending) if size is None or size < 0 else size
        piece, self.pending = self.pending[:count], self.pending[count:]
        return bytes(piece)

    def _verify(self) -> None:
        if self.size != self.expected_size:
            raise ContentMismatch(f"download of {self.name} ended after {self.size} of "
                                  f"{self.expected_size} bytes", "dropbox")
        if self.hasher.hexdigest() != self.expected_hash:
            raise ContentMismatch(f"download of {self.name} does not match Dropbox's "
                                  f"content_hash (damaged on the way)", "dropbox")
