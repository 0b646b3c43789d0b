"""The e-mail source: every image of every accepted message in the family mailbox, once.

How a fetch goes (one folder, ``[sources.imap] folder``):

1. Log in (TLS verified always; ``security = "none"`` only to a loopback host).
2. Select the folder and compare its UIDVALIDITY with the one remembered in the store. Same:
   only UIDs above the last processed one are looked at, whatever their \\Seen flag (a person
   reading the mailbox must not hide photos). Changed: the server renumbered the folder, so
   every message is looked at again; parts taken before are recognised by their origin id,
   which is built from the Message-ID (or a hash of the raw message) and the part number,
   never from the UID.
3. For each message, oldest first, at most ``max_messages_per_run``: fetch it with
   BODY.PEEK (flags untouched), check the sender rules (``senders.py``), take its images
   apart (``mail.py``) and stage each one durably. Only then acknowledge it (\\Seen and/or
   move to ``processed_folder``), and only then remember its UID. A kill at any moment
   leaves either an unacknowledged message whose staged parts are recognised on the rerun,
   or an acknowledged one: nothing lost, nothing staged twice.

Dropped connections and timeouts are retried with tenacity (exponential backoff with
jitter, ``retry_attempts`` in all, each retry logged once) by reconnecting; the loop simply
resumes after the last remembered UID. Wrong credentials are not retried.
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass

from tenacity import (Retrying, retry_if_exception_type, stop_after_attempt,
                      wait_exponential_jitter)

from pipeline.config import MIB, ImapSourceConfig, expand_path
from pipeline.errors import PermanentSourceError, SourceError, TransientSourceError
from pipeline.items import Provenance
from pipeline.secrets import read_secret
from pipeline.sources import mail
from pipeline.sources.base import FetchContext, FetchResult
from pipeline.sources.imap_session import SOURCE, Endpoint, Session, open_session
from pipeline.sources.senders import SenderRules, refusal
from pipeline.staging import TooLarge

log = logging.getLogger("frame-ingest")
# What became of a message: acknowledged (TAKEN: \Seen + moved; REFUSED: moved, left
# unread) or not touched (LEFT: for a person to look at; GONE: deleted meanwhile).
TAKEN, REFUSED, LEFT, GONE = "taken", "refused", "left", "gone"


@dataclass
class Progress:
    """What a fetch has done so far; survives reconnects so a retry resumes, not restarts."""

    messages: int = 0


class ImapSource:
    name = SOURCE

    def __init__(self, settings: ImapSourceConfig):
        self.settings = settings  # checked in config.parse_config (ImapSourceConfig.rules)
        self.endpoint = Endpoint(settings.host, settings.port, settings.security,
                                 settings.username, str(expand_path(settings.ca_file))
                                 if settings.ca_file else "", settings.timeout_seconds)
        self.rules = SenderRules(tuple(settings.allowed_senders), settings.allow_any_sender,
                                 settings.require_authenticated_sender, settings.authserv_id)
        self.max_bytes = settings.max_attachment_bytes
        self.max_message_bytes = settings.max_message_bytes

    # --- connecting ------------------------------------------------------------------

    def connect(self) -> Session:
        return open_session(self.endpoint, read_password(self.settings))

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
        return (f"logged in to {self.endpoint.host}:{self.endpoint.port} as "
                f"{self.endpoint.username}; folder {self.settings.folder} holds "
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
        info = session.select(folder)
        last_uid = self.remembered_uid(context.store, folder, info.uidvalidity)
        target = ""
        if self.settings.processed_folder:
            target = session.server_folder_name(self.settings.processed_folder)
            session.ensure_folder(target)
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

    def process_message(self, session: Session, uid: int, context: FetchContext,
                        result: FetchResult) -> str:
        """Fetch one message and stage its images; say what became of it.

        A message too large to hold in memory, or one that cannot be read at all, is left
        where it is, unacknowledged, for a person to look at (its UID is still passed).
        """
        size = session.message_size(uid)
        if size is None:
            return GONE
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
        """Stage every image of an accepted message; REFUSED when the sender is not."""
        contents = mail.extract(raw, min_side=self.settings.min_image_side,
                                max_bytes=self.max_bytes)
        label = f"message {uid} from {contents.sender or '?'}"
        reason = refusal(contents.sender, contents.message, self.rules)
        if reason:
            log.warning("imap: %s refused: %s; nothing taken", label, reason)
            result.skipped += 1
            return REFUSED
        for skip in contents.skipped:
            log.info("imap: %s: skipped %s", label, skip)
        result.skipped += len(contents.skipped)
        for image in contents.images:
            provenance = self.provenance(uid, contents, image)
            if context.already_taken(provenance):
                continue
            self.stage(context, provenance, image, result)
        if not contents.images:
            log.info("imap: %s (%s) holds no image", label, contents.subject or "no subject")
        return TAKEN

    def stage(self, context: FetchContext, provenance: Provenance, image: mail.ImagePart,
              result: FetchResult) -> None:
        try:
            context.stage(io.BytesIO(image.data), provenance, max_bytes=self.max_bytes)
        except TooLarge:  # mail.extract already left these out; kept as a second guard
            log.info("imap: %s: larger than max_attachment_mb; not taken", provenance.name)
            result.skipped += 1
            return
        except OSError as exc:
            raise PermanentSourceError(f"cannot stage {provenance.name}: "
                                       f"{exc.strerror or exc}", SOURCE) from exc
        result.staged += 1

    def provenance(self, uid: int, contents: mail.MailContents,
                   image: mail.ImagePart) -> Provenance:
        return Provenance(
            source=SOURCE, origin_id=f"{contents.message_key}#{image.index}",
            name=image.filename, received=contents.date, sender=contents.sender,
            subject=contents.subject, message_id=contents.message_id,
            extra={"folder": self.settings.folder, "uid": uid, "from": contents.sender_display})

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
