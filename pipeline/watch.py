"""``frame-ingest watch``: stay connected to the mailbox and run as soon as mail arrives.

A timer-started ``run`` every few minutes would be enough for Dropbox and the drop folder,
but a grandparent who e-mails a photo wants to see it on the frame within a minute. So
``watch`` keeps one extra IMAP connection in IDLE on the configured folder (RFC 2177) and
runs a whole cycle (fetch from every enabled source, then gate, under the instance lock)
when the server announces new mail, and at least every ``idle_seconds`` anyway, which also
renews the IDLE before servers and NAT boxes drop it. A server without IDLE is polled every
``poll_seconds``; with IMAP disabled, every source is polled that way.

The watching connection only listens: fetching goes through the normal source code on its
own connection, so ``watch`` adds no second way of taking mail. Dropped connections are
logged once and reconnected with a growing pause; bad credentials end the command (exit 1).
With OAuth2 the watching connection logs in again with a new access token shortly before
the old one expires.
SIGTERM or SIGINT stop it at once while it waits, or after the cycle in progress.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from typing import Callable, Iterator

from pipeline.config import Config
from pipeline.errors import TransientSourceError

log = logging.getLogger("frame-ingest")
MAX_RECONNECT_PAUSE = 300.0


class StopWatching(Exception):
    """Raised by the signal handler inside a wait, to leave it at once."""


class Stopper:
    """Turns SIGTERM/SIGINT into a clean stop: immediate while waiting, else after the cycle."""

    def __init__(self) -> None:
        self.stopped = False
        self.waiting_now = False

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.handle)

    def handle(self, signum, frame) -> None:
        self.stopped = True
        if self.waiting_now:
            self.waiting_now = False
            raise StopWatching()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Mark a stretch in which a signal may interrupt (no file or store writes here)."""
        self.waiting_now = True       # first: a signal from here on raises at once ...
        try:
            if self.stopped:          # ... and one that came just before is seen here
                raise StopWatching()
            yield
        finally:
            self.waiting_now = False

    def sleep(self, seconds: float) -> None:
        with self.waiting():
            time.sleep(seconds)


def watch(config: Config, run_cycle: Callable[[], None]) -> None:
    """Run cycles on new mail until a signal arrives; PermanentSourceError ends it."""
    stopper = Stopper()
    stopper.install()
    log.info("watch: started")
    try:
        if config.imap.enabled:
            _watch_mailbox(config, run_cycle, stopper)
        else:
            _poll(config.imap.poll_seconds, run_cycle, stopper)
    except StopWatching:
        pass
    log.info("watch: stopped")


def _poll(seconds: float, run_cycle: Callable[[], None], stopper: Stopper) -> None:
    while not stopper.stopped:
        run_cycle()
        stopper.sleep(seconds)


def _watch_mailbox(config: Config, run_cycle: Callable[[], None], stopper: Stopper) -> None:
    from pipeline.sources.imap import ImapSource

    source = ImapSource(config.imap, config.library.state_dir)
    pause = config.imap.retry_wait_seconds
    while not stopper.stopped:
        try:
            with source.connect() as session:
                session.select(config.imap.folder, readonly=True)
                pause = config.imap.retry_wait_seconds  # connected: start the backoff afresh
                if session.can_idle():
                    _idle_loop(session, config.imap.idle_seconds, run_cycle, stopper)
                    continue
            log.info("watch: the server has no IDLE; polling every %g s",
                     config.imap.poll_seconds)
            _poll(config.imap.poll_seconds, run_cycle, stopper)
            return
        except TransientSourceError as exc:
            pause = min(max(pause * 2, 1.0), MAX_RECONNECT_PAUSE)
            log.warning("watch: %s; reconnecting in %.0f s", exc, pause)
            stopper.sleep(pause)


def _idle_loop(session, idle_seconds: float, run_cycle: Callable[[], None],
               stopper: Stopper) -> None:
    """Cycle, then IDLE until new mail or ``idle_seconds``; repeat until stopped.

    A login with an OAuth2 access token ages (``session.renew_at``): shortly before the
    token expires, return, so that the caller logs in again with a new one (some servers,
    Exchange Online among them, drop a session whose token has expired).
    """
    announce = log.info  # once per connection; later waits only at debug level (quiet Pi)
    while not stopper.stopped:
        run_cycle()
        if stopper.stopped:
            return
        announce("watch: waiting for new mail")
        announce = log.debug
        deadline = time.monotonic() + idle_seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if session.renew_at is not None:
                renew_in = session.renew_at - time.time()
                if renew_in <= 0:
                    log.info("watch: the OAuth2 access token expires soon; logging in again "
                             "with a new one")
                    return
                remaining = min(remaining, renew_in)
            if session.idle_until_new_mail(remaining, interruptible=stopper.waiting):
                log.info("watch: new mail")
                break
