"""The command line: ``frame-ingest [--config PATH] [-v|-q] COMMAND``.

Each command parses its arguments and calls one function (``run.run_once``,
``resweep.resweep``, ``quarantine.restore``, ...); what a run does lives in ``run.py``.

This is the one place that maps errors to exit codes: 0 all well, 1 the run finished but
something failed (a source, a move), 2 usage or configuration error, 75 another instance
holds the lock (EX_TEMPFAIL: systemd and cron may simply try again later).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

from pipeline import __version__
from pipeline.text import one_line_record, shown
from pipeline.config import Config, load_config
from pipeline.errors import AlreadyRunning, ConfigError, PipelineError, SourceError
from pipeline.locking import instance_lock
from pipeline.run import RunSummary, run_once
from pipeline.sources import enabled_sources, source_names
from pipeline.store import Store

log = logging.getLogger("frame-ingest")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 75


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="frame-ingest", description="Feed a photo frame's library from e-mail, Dropbox "
        "and a drop folder, and keep it free of duplicates.")
    parser.add_argument("--config", metavar="PATH", help="configuration file (TOML)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument("--version", action="version", version=f"frame-ingest {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="fetch from every enabled source, then gate")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    fetch = commands.add_parser("fetch", help="fetch into staging without gating")
    fetch.add_argument("source", nargs="?", choices=source_names(), help="only this source")
    gate = commands.add_parser("gate", help="decide every staged file")
    gate.add_argument("--dry-run", action="store_true", help="say what would happen, move nothing")
    status = commands.add_parser("status", help="library, staging and quarantine counts")
    status.add_argument("--json", action="store_true")
    commands.add_parser("check", help="check that every enabled source can be reached")
    commands.add_parser("dropbox-auth", help="link frame-ingest to a Dropbox account "
                        "(prints an address, asks for the code, saves a refresh token)")
    commands.add_parser("imap-auth", help="sign in to an OAuth2 mailbox (Outlook.com, "
                        "Microsoft 365): prints an address and a code for a phone")
    commands.add_parser("watch", help="stay connected to the mailbox; run when mail arrives "
                        "(polling without IMAP IDLE) until SIGTERM")
    quarantine = commands.add_parser("quarantine", help="list or restore quarantined files")
    actions = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="quarantined files and what they duplicate")
    listing.add_argument("--json", action="store_true")
    restore = actions.add_parser("restore", help="move a file back into Pictures for good")
    restore.add_argument("name", help="the name as `quarantine list` shows it")
    add_maintenance_commands(commands)
    add_frame_commands(commands)
    add_web_commands(commands)
    return parser


def add_frame_commands(commands) -> None:
    """remove and removed: taking a photo off the frame for good, and back."""
    remove = commands.add_parser("remove", help="take a photo off the frame: move it to "
                                 "removed_folder and quarantine it if it is sent again")
    remove.add_argument("path", help="the photo in Pictures (absolute or relative to it)")
    removed = commands.add_parser("removed", help="list the photos removed from the frame, "
                                  "or put one back")
    actions = removed.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="remembered removals, newest first")
    listing.add_argument("--json", action="store_true")
    undo = actions.add_parser("undo", help="move a removed photo back into Pictures")
    undo.add_argument("id", type=int, help="its id as `removed list` shows it")


def add_web_commands(commands) -> None:
    """serve and web-password: the page on the home network (docs/web.md)."""
    commands.add_parser("serve", help="serve the web page on the home network ([web] listen)")
    commands.add_parser("web-password", help="set the web page's password (asked twice on a "
                        "terminal, else one line from standard input)")


def add_maintenance_commands(commands) -> None:
    """resweep, install-systemd and review: the unattended-operation commands."""
    resweep = commands.add_parser("resweep", help="re-sign the library and quarantine the "
                                  "duplicates inside it")
    resweep.add_argument("--dry-run", action="store_true", help="say what would move, move "
                         "nothing")
    resweep.add_argument("--json", action="store_true", help="print the result as one JSON "
                         "object")
    resweep.add_argument("--wait", action="store_true", help="wait for a running frame-ingest "
                         "instead of exiting 75")
    units = commands.add_parser("install-systemd", help="write and enable the systemd units")
    units.add_argument("--user", action="store_true", help="user units (~/.config/systemd/user)")
    units.add_argument("--dry-run", action="store_true", help="print the units and commands, "
                       "write and run nothing")
    review = commands.add_parser("review", help="write an HTML page of quarantined and "
                                 "rejected files")
    review.add_argument("--output", metavar="DIR", help="folder for the page (default: "
                        "state_dir/review)")


def setup_logging(verbose: bool, quiet: bool) -> None:
    """One line per event on stderr; syslog priority prefixes when journald reads it."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter())
    elif sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                               "%H:%M:%S"))
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(one_line_record)
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


class _JournalFormatter(logging.Formatter):
    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITY.get(record.levelno, 6)}>{record.getMessage()}"


class Stopped(KeyboardInterrupt):
    """SIGTERM (systemd stopping the unit, kill): unwinds like Ctrl-C, so every open
    transaction rolls back and the next run continues where this one stopped."""


def _stop(signum, frame) -> None:
    raise Stopped()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    setup_logging(arguments.verbose, arguments.quiet)
    signal.signal(signal.SIGTERM, _stop)
    try:
        config = load_config(arguments.config)
        return COMMANDS[arguments.command](config, arguments)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {shown(problem)}", file=sys.stderr)
        return EXIT_USAGE
    except AlreadyRunning as exc:
        print(f"frame-ingest: {shown(exc)}", file=sys.stderr)
        return EXIT_LOCKED
    except PipelineError as exc:
        print(f"error: {shown(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        print("frame-ingest: interrupted; rerun to continue where it stopped", file=sys.stderr)
        if isinstance(exc, Stopped):    # end by the signal itself: systemd counts it clean
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        return 130


def command_run(config: Config, arguments) -> int:
    return _report(arguments, run_once(config))


def command_fetch(config: Config, arguments) -> int:
    if arguments.source:
        config.require_enabled(arguments.source)  # before the lock: nothing touched
    return _report(arguments, run_once(config, gate=False, only=arguments.source))


def command_gate(config: Config, arguments) -> int:
    return _report(arguments, run_once(config, fetch=False, dry_run=arguments.dry_run),
                   dry_run=arguments.dry_run)


def _report(arguments, summary: RunSummary, dry_run: bool = False) -> int:
    if getattr(arguments, "json", False):
        print(json.dumps(summary.to_dict()))
    print(summary.line(arguments.command + (" (dry run)" if dry_run else "")), file=sys.stderr)
    return EXIT_FAILED if summary.errors else EXIT_OK


def command_watch(config: Config, arguments) -> int:
    """Run a cycle whenever mail arrives (IMAP IDLE) or every poll interval, until SIGTERM."""
    from pipeline.watch import watch

    def run_cycle() -> None:
        try:
            summary = run_once(config)
        except AlreadyRunning as exc:
            log.info("watch: %s", exc)
            return
        if summary.fetched or summary.errors:
            log.info("%s", summary.line("watch"))

    watch(config, run_cycle)
    return EXIT_OK


def command_status(config: Config, arguments) -> int:
    from pipeline.status import gather_status, format_status
    with Store(config.database) as store:
        status = gather_status(config, store)
    print(json.dumps(status, indent=2) if arguments.json else format_status(status))
    return EXIT_OK


def command_check(config: Config, arguments) -> int:
    failures = 0
    for source in enabled_sources(config):
        try:
            print(shown(f"{source.name}: OK: {source.check()}"))
        except SourceError as exc:
            failures += 1
            print(shown(f"{source.name}: FAILED: {exc}"))
    return EXIT_FAILED if failures else EXIT_OK


def command_dropbox_auth(config: Config, arguments) -> int:
    from pipeline.sources.dropbox_auth import authorize
    config.check_rules("dropbox")
    authorize(config.dropbox, config.library.state_dir)
    return EXIT_OK


def command_imap_auth(config: Config, arguments) -> int:
    from pipeline.sources.imap_auth import authorize
    authorize(config.imap, config.library.state_dir, config.label,
              say=lambda line: print(line, flush=True))
    return EXIT_OK


def command_quarantine(config: Config, arguments) -> int:
    from pipeline import quarantine
    if arguments.action == "list":
        with Store(config.database) as store:
            entries = quarantine.list_entries(store, config)
        if arguments.json:
            print(json.dumps([entry.to_dict() for entry in entries], indent=2))
        else:
            for entry in entries:
                print(quarantine.describe(entry))
            print(f"{len(entries)} file(s) in quarantine", file=sys.stderr)
        return EXIT_OK
    with instance_lock(config.library.state_dir), Store(config.database) as store:
        target = quarantine.restore(store, config, arguments.name)
    print(f"restored to {shown(target)}")
    return EXIT_OK


def command_resweep(config: Config, arguments) -> int:
    from pipeline.resweep import resweep
    with instance_lock(config.library.state_dir, wait=arguments.wait), \
            Store(config.database) as store, _progress_bar() as progress:
        report = resweep(config, store, dry_run=arguments.dry_run, progress=progress)
    if arguments.json:
        print(json.dumps(report.to_dict()))
    elif arguments.dry_run:
        for move in report.planned:
            print(shown(f"would quarantine {move['path']}: {move['reason']}"))
    print(report.line(), file=sys.stderr)
    return EXIT_FAILED if report.errors else EXIT_OK


@contextlib.contextmanager
def _progress_bar():
    """A tqdm bar (files signed / total, rate, ETA) on an interactive stderr, else None:
    never under systemd (journald reads stderr) or in a pipe."""
    if not sys.stderr.isatty() or os.environ.get("JOURNAL_STREAM"):
        yield None
        return
    from tqdm import tqdm
    bar = tqdm(total=0, unit="file", desc="signing", file=sys.stderr, leave=False)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
    try:
        yield progress
    finally:
        bar.close()


def command_install_systemd(config: Config, arguments) -> int:
    from pipeline import units
    return units.install(config, user=arguments.user, dry_run=arguments.dry_run)


def command_review(config: Config, arguments) -> int:
    from pipeline import review
    output = Path(arguments.output) if arguments.output else config.library.state_dir / "review"
    with Store(config.database) as store:
        first_page, count = review.write_review(store, config, output)
    print(f"{count} file(s) to review: {first_page.resolve().as_uri()}")
    return EXIT_OK


def command_remove(config: Config, arguments) -> int:
    from pipeline.removals import remove_from_frame
    with instance_lock(config.library.state_dir), Store(config.database) as store:
        target = remove_from_frame(config, store, arguments.path)
    print(f"removed from the frame: now {shown(target)}")
    return EXIT_OK


def command_removed(config: Config, arguments) -> int:
    from pipeline.removals import list_removed, undo_removal
    if arguments.action == "list":
        with Store(config.database) as store:
            rows = list_removed(store, limit=-1)
        if arguments.json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                kept = config.library.removed_folder / row["kept"] if row["kept"] \
                    else "deleted"
                print(shown(f"{row['id']}  {row['path']}  removed {row['removed_at']}  "
                            f"({kept})"))
            print(f"{len(rows)} removed photo(s) remembered", file=sys.stderr)
        return EXIT_OK
    with instance_lock(config.library.state_dir), Store(config.database) as store:
        target = undo_removal(config, store, arguments.id)
    print(f"back in Pictures: {shown(target)}")
    return EXIT_OK


def command_serve(config: Config, arguments) -> int:
    from pipeline.web.server import serve
    return serve(config)


def command_web_password(config: Config, arguments) -> int:
    from pipeline.passwords import ask_password, set_password
    path = set_password(config.library.state_dir, ask_password())
    print(f"saved the web page's password (a scrypt hash) in {shown(path)}")
    return EXIT_OK


COMMANDS = {"run": command_run, "fetch": command_fetch, "gate": command_gate,
            "status": command_status, "check": command_check, "watch": command_watch,
            "dropbox-auth": command_dropbox_auth, "imap-auth": command_imap_auth,
            "quarantine": command_quarantine, "resweep": command_resweep,
            "install-systemd": command_install_systemd, "review": command_review,
            "remove": command_remove, "removed": command_removed,
            "serve": command_serve, "web-password": command_web_password}
