"""The e-mail source: every image of every accepted message in the family mailbox, once.

How a fetch goes (one folder, ``[sources.imap] folder``):

1. Log in (TLS verified always; ``security = "none"`` only to a loopback host) with the
   password, or with an OAuth2 access token (``auth = "oauth2"``, see ``imap_oauth.py``).
2. Select the folder and compare its UIDVALIDITY with the one remembered in the store. Same:
   only UIDs above the last processed one are looked at, whatever their \\Seen flag (a person
   reading the mailbox must not hide photos). Changed: the server renumbered the folder, so
   every message is looked at again; parts taken before are recognised by their origin id,
   which is built from the Message-ID (or a hash of the raw message) and the part number,
   never from the UID.
3. For each message, oldest first, at most ``max_messages_per_run``: fetch its headers and
   structure (BODYSTRUCTURE; always BODY.PEEK, flags untouched), check the sender rules
   (``senders.py``), then fetch only the parts that may be pictures, each decoded to disk
   in chunks (``mail_parts.py``), and stage each picture durably: the message body, videos
   and parts taken before are never downloaded, so a 200 MB video beside a photo costs
   nothing; ``max_message_mb`` bounds what is downloaded (the pictures' parts, or the
   whole message). A structure that cannot be trusted (``mail_parts.Untrusted``) or a message
   without a Message-ID is fetched whole instead, within ``max_message_mb``, and taken
   apart in memory (``mail.py``). Only then acknowledge it (\\Seen and/or move to
   ``processed_folder``), and only then remember its UID. A kill at any moment
   leaves either an unacknowledged message whose staged parts are recognised on the rerun,
   or an acknowledged one: nothing lost, nothing staged twice.

Dropped connections and timeouts are retried with tenacity (exponential backoff with
jitter, ``retry_attempts`` in all, each retry logged once) by reconnecting; the loop simply
resumes after the last remembered UID. Wrong credentials are not retried.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tenacity import (Retrying, retry_if_exception_type, stop_after_attempt,
                      wait_exponential_jitter)

from pipeline.config import MIB, ImapSourceConfig, expand_path
from pipeline.errors import PermanentSourceError, SourceError, TransientSourceError
from pipeline.items import Provenance
from pipeline.secrets import read_secret
from pipeline.sources import mail, mail_parts
from pipeline.sources.base import FetchContext, FetchResult
from pipeline.sources.imap_session import (SOURCE, BearerToken, Endpoint, LoginRefused,
                                           Outline, Session, open_session)
from pipeline.sources.mail_parts import Untrusted
from pipeline.sources.senders import SenderRules, is_allowed, refusal
from pipeline.staging import TooLarge
from pipeline.video_formats import SNIFF_BYTES, sniff_video

log = logging.getLogger("frame-ingest")
# What became of a message: acknowledged (TAKEN: \Seen + moved; REFUSED: moved, left
# unread) or not touched (LEFT: for a person to look at; GONE: deleted meanwhile).
TAKEN, REFUSED, LEFT, GONE = "taken", "refused", "left", "gone"
CHUNK = 1024 * 1024     # octets of a part fetched at a time (memory: about three of these)


class _Gone(Exception):
    """The message disappeared (deleted meanwhile) while its parts were being fetched."""


@dataclass
class Progress:
    """What a fetch has done so far; survives reconnects so a retry resumes, not restarts."""

    messages: int = 0


class ImapSource:
    name = SOURCE

    def __init__(self, settings: ImapSourceConfig, state_dir: Path):
        self.settings = settings  # checked in config.parse_config (ImapSourceConfig.rules)
        self.endpoint = endpoint_for(settings)
        self.tokens = None
        if settings.auth == "oauth2":
            from pipeline.sources.imap_oauth import Tokens  # requests, oauthlib: only if used
            self.tokens = Tokens(settings, state_dir)
        self.rules = SenderRules(tuple(settings.allowed_senders), settings.allow_any_sender,
                                 settings.require_authenticated_sender, settings.authserv_id)
        self.max_bytes = settings.max_attachment_bytes
        self.max_message_bytes = settings.max_message_bytes

    # --- connecting ------------------------------------------------------------------

    def connect(self) -> Session:
        """A logged-in session: with the password, or with an OAuth2 access token (a cached
        one the server refuses before its expiry is replaced once, then tried again)."""
        if self.tokens is None:
            return open_session(self.endpoint, read_password(self.settings))
        token = self.tokens.access_token()
        try:
            return open_session(self.endpoint, BearerToken(token.value, token.renew_at))
        except LoginRefused:
            if token.fresh:
                raise
        log.info("imap: %s refused the cached OAuth2 access token; getting a new one",
                 self.endpoint.host)
        token = self.tokens.renew(token)
        return open_session(self.endpoint, BearerToken(token.value, token.renew_at))

    def retrying(self) -> Retrying:
        """Reconnect-and-resume policy for transient failures; each retry logged once."""
        settings = self.settings
        initial = settings.retry_wait_seconds

        def announce(state) -> None:
            log.warning("imap: %s; retry %d of %d in %.1f s", state.outcome.exception(),
                        state.attempt_number, settings.retry_attempts - 1,
                        state.next_action.sleep if state.next_action else 0.0)

        return Retrying(retry=retry_if_exception_type(TransientSourceError),
                        stop=stop_after_attempt(settings.retry_attempts),
                        wait=wait_exponential_jitter(initial=initial, max=max(initial, 60.0),
                                                     jitter=initial),
                        before_sleep=announce, reraise=True)

    def check(self) -> str:
        """Log in and look for the folder, once, fetching nothing."""
        with self.connect() as session:
            info = session.select(self.settings.folder, readonly=True)
        method = "" if session.login_method == "password" else \
            f" with OAuth2 ({session.login_method})"
        return (f"logged in to {self.endpoint.host}:{self.endpoint.port} as "
                f"{self.endpoint.username}{method}; folder {self.settings.folder} holds "
                f"{info.exists} message(s)")

    # --- fetching --------------------------------------------------------------------

    def fetch(self, context: FetchContext) -> FetchResult:
        result = FetchResult()
        progress = Progress()
        for attempt in self.retrying():
            with attempt:
                with self.connect() as session:
                    self.fetch_folder(session, context, result, progress)
        return result

    def fetch_folder(self, session: Session, context: FetchContext, result: FetchResult,
                     progress: Progress) -> None:
        folder = self.settings.folder
        target = ""
        if self.settings.processed_folder:
            target = session.server_folder_name(self.settings.processed_folder)
            session.ensure_folder(target)
            self.recall_allowed(session, context.store, target)
        info = session.select(folder)
        last_uid = self.remembered_uid(context.store, folder, info.uidvalidity)
        uids = session.uids_after(last_uid)
        budget = self.settings.max_messages_per_run - progress.messages
        if uids:
            log.info("imap: %s: %d new message(s)", folder, len(uids))
        if len(uids) > budget:
            log.info("imap: %s: %d message(s) left for the next run (max_messages_per_run)",
                     folder, len(uids) - max(budget, 0))
        for uid in uids[:max(budget, 0)]:
            outcome = self.process_message(session, uid, context, result)
            if outcome in (TAKEN, REFUSED):
                session.acknowledge(uid, seen=self.settings.mark_seen and outcome == TAKEN,
                                    target=target)
            self.remember_uid(context.store, folder, info.uidvalidity, uid)
            progress.messages += 1

    def recall_allowed(self, session: Session, store, processed: str) -> None:
        """Refused mail waits unread in ``processed_folder``; once its sender is allowed
        (the web page's "Allow this sender", or by hand), move it back into ``folder``, where
        it gets new UIDs and this same fetch takes it. Then the sender is forgotten; a
        crash in between only makes the next run look again."""
        for row in store.refused_senders():
            address = row["address"]
            if not self.rules.allow_any and not is_allowed(address, self.rules.allowed):
                continue
            moved = session.move_unseen_from(processed, address, self.settings.folder)
            log.info("imap: %s is allowed now: %d refused message(s) moved back from %s to %s",
                     address, moved, processed, self.settings.folder)
            with store.transaction() as tx:
                store.forget_refused_sender(tx, address)

    def process_message(self, session: Session, uid: int, context: FetchContext,
                        result: FetchResult) -> str:
        """Stage the images of one message; say what became of it.

        The structure first (BODYSTRUCTURE, with the headers), then only the parts that may
        be pictures, each decoded to disk in chunks: memory stays near one chunk whatever
        the message holds. A structure that cannot be trusted makes the message be read
        whole, as long as it is within ``max_message_mb``; a message too large for that, or
        one that cannot be read at all, is left where it is, unacknowledged, for a person
        to look at (its UID is still passed).
        """
        outline = session.fetch_outline(uid)
        if outline is None:
            return GONE
        try:
            contents, parts = self.plan(outline)
        except Untrusted as why:
            log.info("imap: message %d: %s; reading it whole", uid, why)
            return self.process_whole(session, uid, outline.size, context, result)
        try:
            return self.take_parts(session, uid, outline, contents, parts, context, result)
        except _Gone:
            return GONE
        except SourceError:
            raise
        except Exception as exc:  # hostile mail may trip the parser anywhere: skip, not stop
            log.error("imap: message %d cannot be read (%s: %s); left in %s", uid,
                      type(exc).__name__, exc, self.settings.folder)
            result.skipped += 1
            return LEFT

    def plan(self, outline: Outline) -> tuple[mail.MailContents, list[mail_parts.Leaf]]:
        """The headers and the numbered leaf parts; ``Untrusted`` sends it down the whole
        path (a message without a Message-ID is keyed by a hash of all of its bytes)."""
        if outline.structure is None:
            raise Untrusted("the server's BODYSTRUCTURE cannot be read")
        contents = mail.headers(outline.header)
        if not contents.message_key:
            raise Untrusted("no Message-ID")
        return contents, mail_parts.leaves(outline.structure, outline.size)

    def process_whole(self, session: Session, uid: int, size: int, context: FetchContext,
                      result: FetchResult) -> str:
        if size > self.max_message_bytes:
            log.warning("imap: message %d: %.1f MiB is more than max_message_mb (%g MiB); "
                        "left in %s unread", uid, size / MIB, self.settings.max_message_mb,
                        self.settings.folder)
            result.skipped += 1
            return LEFT
        raw = session.fetch_message(uid)
        if raw is None:
            return GONE
        try:
            return self.take_message(uid, raw, context, result)
        except SourceError:
            raise
        except Exception as exc:  # hostile mail may trip the parser anywhere: skip, not stop
            log.error("imap: message %d cannot be read (%s: %s); left in %s", uid,
                      type(exc).__name__, exc, self.settings.folder)
            result.skipped += 1
            return LEFT

    def take_message(self, uid: int, raw: bytes, context: FetchContext,
                     result: FetchResult) -> str:
        """Stage every image of an accepted message read whole; REFUSED when the sender is
        not accepted."""
        contents = mail.extract(raw, min_side=self.settings.min_image_side,
                                max_bytes=self.max_bytes, take_videos=context.video.enabled)
        if self.refused(uid, contents, result, context):
            return REFUSED
        self.log_skips(uid, contents, contents.skipped, result)
        for image in contents.images:
            provenance = self.provenance(uid, contents, image.index, image.filename)
            if context.already_taken(provenance):
                continue
            self.stage(context, provenance, io.BytesIO(image.data), result)
        if not contents.images:
            self.log_no_image(uid, contents)
        return TAKEN

    def take_parts(self, session: Session, uid: int, outline: Outline,
                   contents: mail.MailContents, parts: list[mail_parts.Leaf],
                   context: FetchContext, result: FetchResult) -> str:
        """Stage the pictures among ``parts``, fetching only those that may be pictures."""
        if self.refused(uid, contents, result, context):
            return REFUSED
        sections = [leaf.part.header_section for leaf in parts
                    if leaf.part.header_section != "HEADER"]
        headers = session.fetch_sections(uid, sections) if sections else {}
        if headers is None:
            raise _Gone()
        headers["HEADER"] = outline.header
        skipped: list[str] = []
        images, wanted = 0, []
        parsed = [(leaf, mail.parse(headers[leaf.part.header_section])) for leaf in parts]
        candidates = []
        for leaf, part in parsed:
            if part.get_content_maintype() == "video" and not context.video.enabled:
                result.videos_left += 1     # not downloaded: videos are switched off
                continue
            label = mail.wanted(part, leaf.index, skipped, take_videos=context.video.enabled)
            if label is not None:
                candidates.append((leaf, part, label))
        for leaf, part, label in candidates:
            provenance = self.provenance(uid, contents, leaf.index,
                                         mail.filename_of(part, leaf.index))
            if context.already_taken(provenance):
                images += 1
            else:
                wanted.append((leaf, part, label, provenance))
        if wanted:  # the body only for pictures still to take (captions' {body})
            body = self.body_of(session, uid, parsed)
            wanted = [(leaf, part, label, dataclasses.replace(provenance, body=body))
                      for leaf, part, label, provenance in wanted]
        download = sum(leaf.part.size for leaf, *_ in wanted)
        if download > self.max_message_bytes:
            log.warning("imap: message %d: its pictures are %.1f MiB to download, more than "
                        "max_message_mb (%g MiB); left in %s unread", uid, download / MIB,
                        self.settings.max_message_mb, self.settings.folder)
            result.skipped += 1
            return LEFT
        for leaf, part, label, provenance in wanted:
            images += self.stage_part(session, uid, leaf.part, part, label, provenance,
                                      context, result, skipped)
        self.log_skips(uid, contents, skipped, result)
        if not images:
            self.log_no_image(uid, contents)
        return TAKEN

    def body_of(self, session: Session, uid: int, parsed: list) -> str:
        """``mail.first_line`` of the message's plain-text body, from at most
        ``mail.BODY_LIMIT`` characters' worth of the part's bytes ("" when none)."""
        for leaf, part in parsed:
            if mail.is_body_part(part):
                encoded = session.fetch_chunk(uid, leaf.part.section, 0, 2 * mail.BODY_LIMIT)
                if encoded is None:
                    raise _Gone()
                decoder = mail_parts.decoder_for(leaf.part.encoding)
                try:
                    data = decoder.feed(encoded) + decoder.finish()
                except ValueError:  # binascii.Error: broken base64, or cut mid-group
                    return ""
                return mail.first_line(mail.body_text(data, part))
        return ""

    def stage_part(self, session: Session, uid: int, where: mail_parts.MimePart, part,
                   label: str, provenance: Provenance, context: FetchContext,
                   result: FetchResult, skipped: list[str]) -> int:
        """Decode one part to an unnamed file beside the staged items, stage it if it is a
        picture; 1 if it was one, else 0 (with the reason in ``skipped``)."""
        try:
            spool = tempfile.TemporaryFile(dir=context.staging.root)
        except OSError as exc:
            raise PermanentSourceError(f"cannot stage {provenance.name}: "
                                       f"{exc.strerror or exc}", SOURCE) from exc
        with spool:
            try:
                complete = self.download(session, uid, where, spool)
            except ValueError as exc:  # binascii.Error: broken base64
                skipped.append(f"{label}: cannot decode the part: {exc}")
                return 0
            if not complete:
                skipped.append(f"{label}: more than max_attachment_mb "
                               f"({self.max_bytes / MIB:g} MiB); not taken")
                return 0
            spool.seek(0)
            video = context.video.enabled and sniff_video(spool.read(SNIFF_BYTES))
            spool.seek(0)
            if not video and mail.judge(mail.identify_file(spool), part, label,
                                        self.settings.min_image_side, skipped) is None:
                return 0
            spool.seek(0)
            self.stage(context, provenance, spool, result)
        return 1

    def download(self, session: Session, uid: int, where: mail_parts.MimePart,
                 sink) -> bool:
        """Fetch a part in chunks, decoding each into ``sink``; False past max_bytes."""
        decoder = mail_parts.decoder_for(where.encoding)
        offset = written = 0
        while True:
            chunk = session.fetch_chunk(uid, where.section, offset, CHUNK)
            if chunk is None:
                raise _Gone()
            offset += len(chunk)
            last = len(chunk) < CHUNK
            data = decoder.feed(chunk) + (decoder.finish() if last else b"")
            written += len(data)
            if written > self.max_bytes:
                return False
            try:
                sink.write(data)
            except OSError as exc:
                raise PermanentSourceError(f"cannot stage part {where.section} of message "
                                           f"{uid}: {exc.strerror or exc}", SOURCE) from exc
            if last:
                return True

    def refused(self, uid: int, contents: mail.MailContents, result: FetchResult,
                context: FetchContext) -> bool:
        """Whether the sender rules refuse the message; a sender refused for not being in
        ``allowed_senders`` is remembered for the web page (``Store.note_refused_sender``)."""
        reason = refusal(contents.sender, contents.message, self.rules)
        if reason:
            log.warning("imap: message %d from %s refused: %s; nothing taken", uid,
                        contents.sender or "?", reason)
            result.skipped += 1
            if contents.sender and not self.rules.allow_any \
                    and not is_allowed(contents.sender, self.rules.allowed):
                with context.store.transaction() as tx:
                    context.store.note_refused_sender(tx, contents.sender,
                                                      contents.sender_display, contents.subject)
        return bool(reason)

    def log_skips(self, uid: int, contents: mail.MailContents, skipped: list[str],
                  result: FetchResult) -> None:
        for skip in skipped:
            log.info("imap: message %d from %s: skipped %s", uid, contents.sender or "?", skip)
        result.skipped += len(skipped)

    def log_no_image(self, uid: int, contents: mail.MailContents) -> None:
        log.info("imap: message %d from %s (%s) holds no image", uid, contents.sender or "?",
                 contents.subject or "no subject")

    def stage(self, context: FetchContext, provenance: Provenance, stream,
              result: FetchResult) -> None:
        try:
            context.stage(stream, provenance, max_bytes=self.max_bytes)
        except TooLarge:  # the parts were measured already; kept as a second guard
            log.info("imap: %s: larger than max_attachment_mb; not taken", provenance.name)
            result.skipped += 1
            return
        except OSError as exc:
            raise PermanentSourceError(f"cannot stage {provenance.name}: "
                                       f"{exc.strerror or exc}", SOURCE) from exc
        result.staged += 1

    def provenance(self, uid: int, contents: mail.MailContents, index: int,
                   filename: str) -> Provenance:
        """The origin id is the message key and the leaf-part number: the same for the
        same message whichever way it was read, and whatever its UID."""
        return Provenance(
            source=SOURCE, origin_id=f"{contents.message_key}#{index}",
            name=filename, received=contents.date, sender=contents.sender,
            subject=contents.subject, message_id=contents.message_id,
            extra={"folder": self.settings.folder, "uid": uid, "from": contents.sender_display},
            sender_name=contents.sender_name, body=contents.body,
            date=contents.date[:10])

    # --- remembered position -----------------------------------------------------------

    def remembered_uid(self, store, folder: str, uidvalidity: int) -> int:
        """The last processed UID, or 0 (a full, deduplicated rescan) after renumbering."""
        raw = store.get_state(SOURCE, f"folder:{folder}")
        state = json.loads(raw) if raw else None
        if state and state.get("uidvalidity") == uidvalidity:
            return int(state.get("last_uid", 0))
        if state:
            log.warning("imap: %s: UIDVALIDITY changed (%s -> %s); rescanning the folder, "
                        "photos taken before are recognised and not taken again", folder,
                        state.get("uidvalidity"), uidvalidity)
        self.remember_uid(store, folder, uidvalidity, 0)
        return 0

    def remember_uid(self, store, folder: str, uidvalidity: int, uid: int) -> None:
        with store.transaction() as tx:
            store.set_state(tx, SOURCE, f"folder:{folder}",
                            json.dumps({"uidvalidity": uidvalidity, "last_uid": uid}))


def endpoint_for(settings: ImapSourceConfig) -> Endpoint:
    return Endpoint(settings.host, settings.port, settings.security, settings.username,
                    str(expand_path(settings.ca_file)) if settings.ca_file else "",
                    settings.timeout_seconds, settings.auth)


def read_password(settings: ImapSourceConfig) -> str:
    """The password from ``password_file`` or ``password_env``; errors never quote it."""
    if settings.password_file:
        path = expand_path(settings.password_file)
        try:
            return read_secret(path, "the IMAP password_file", strip="\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise PermanentSourceError(f"cannot read password_file {path}: "
                                       f"{getattr(exc, 'strerror', None) or exc}",
                                       SOURCE) from None
    value = os.environ.get(settings.password_env, "")
    if not value:
        raise PermanentSourceError(f"environment variable {settings.password_env} "
                                   "(password_env) is not set", SOURCE)
    return value
