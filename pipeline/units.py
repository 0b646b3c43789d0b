"""systemd units for unattended operation, and `frame-ingest install-systemd`.

Three jobs: ``frame-ingest.service`` (a oneshot ``run``, started every 15 minutes by its
timer), ``frame-ingest-resweep.service`` (the nightly ``resweep``, idle I/O priority) and
``frame-ingest-watch.service`` (the long-running IMAP IDLE ``watch``). Every unit carries
the same hardening, each line commented; the units in ``systemd/`` are these templates
rendered for a user ``pi`` with the default folders, and ``install-systemd`` renders them
with the real executable, configuration file, folders and user.
"""

from __future__ import annotations

import getpass
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Config, load_config
from pipeline.errors import PipelineError

TIMERS = ("frame-ingest.timer", "frame-ingest-resweep.timer")

HARDENING = """\
# --- hardening: each line takes away something the job does not need ---
# no setuid/setcap privilege gain, for this process or any child
NoNewPrivileges=yes
# /usr, /boot, /efi and /etc are read-only for the job
ProtectSystem=strict
# every home is read-only, except the folders listed in ReadWritePaths=
ProtectHome=read-only
# the only places the job writes: the library, quarantine, rejected and its state
ReadWritePaths={writable}
# a private /tmp and /var/tmp, emptied when the job ends
PrivateTmp=yes
# no device nodes except /dev/null, /dev/zero, /dev/random and the like
PrivateDevices=yes
# /proc/sys, /sys and friends are read-only
ProtectKernelTunables=yes
# no loading of kernel modules
ProtectKernelModules=yes
# no reading of the kernel log
ProtectKernelLogs=yes
# the cgroup tree is read-only
ProtectControlGroups=yes
# the system clock cannot be changed
ProtectClock=yes
# the host name cannot be changed
ProtectHostname=yes
# other users' processes are invisible in /proc
ProtectProc=invisible
# no capabilities at all...
CapabilityBoundingSet=
# ...and none handed down to the process
AmbientCapabilities=
# sockets: local (the multiprocessing forkserver) {families_why}
RestrictAddressFamilies={families}
# no user, network, mount or other namespaces of its own
RestrictNamespaces=yes
# no realtime scheduling (it would starve the frame's display)
RestrictRealtime=yes
# cannot create setuid/setgid files
RestrictSUIDSGID=yes
# no memory that is both writable and executable (Python, numpy and Pillow need none)
MemoryDenyWriteExecute=yes
# the execution domain (personality) is fixed
LockPersonality=yes
# only the system calls an ordinary service makes...
SystemCallFilter=@system-service
# ...minus privileged ones and changing priorities or resource limits
SystemCallFilter=~@privileged @resources
# a refused call fails with EPERM (Python reports it) instead of killing the job
SystemCallErrorNumber=EPERM
# no 32-bit or foreign-architecture system calls
SystemCallArchitectures=native
# photos it files stay readable by the frame's display program
UMask=0022
"""

ONLINE = ("AF_UNIX AF_INET AF_INET6",
          "and IP (IMAP and Dropbox)")
OFFLINE = ("AF_UNIX", "only: the resweep needs no network")
WEB = ("AF_UNIX AF_INET AF_INET6", "and IP (the page is served over HTTP)")


@dataclass(frozen=True)
class Setup:
    """What the units are rendered with."""
    command: str                # the frame-ingest executable (shell-quoted words)
    config: Path | None
    writable: tuple[Path, ...]  # Pictures, quarantine, rejected, state_dir
    user: str | None            # None: user units (the manager's own user)
    # the web page also writes removed_folder (Remove from frame) and the configuration
    # file's folder (Allow this sender)
    web_writable: tuple[Path, ...] = ()


def service(setup: Setup, description: str, arguments: str, extra: str,
            online: bool = True, install: str = "", families: tuple[str, str] | None = None,
            writable: tuple[Path, ...] | None = None) -> str:
    config = f" --config {shlex.quote(str(setup.config))}" if setup.config else ""
    families, families_why = families or (ONLINE if online else OFFLINE)
    lines = [
        "[Unit]", f"Description={description}",
        *(["# fetching needs the network up"] if online else []),
        *(["After=network-online.target", "Wants=network-online.target"] if online else []),
        "", "[Service]",
        *([f"# the photos and the state belong to this user\nUser={setup.user}"]
          if setup.user else []),
        "# the command (the real executable and configuration file)",
        f"ExecStart={setup.command}{config} {arguments}", extra.rstrip("\n"),
        HARDENING.format(writable=" ".join(shlex.quote(str(path))
                                           for path in writable or setup.writable),
                         families=families, families_why=families_why),
    ]
    if not online:
        lines.append("# no network at all: not even loopback\nPrivateNetwork=yes\n"
                     "IPAddressDeny=any\n")
    if install:
        lines.append(install)
    return "\n".join(lines)


def render(setup: Setup) -> dict[str, str]:
    """Unit file name -> text."""
    target = "default.target" if setup.user is None else "multi-user.target"
    return {
        "frame-ingest.service": service(setup, "frame-ingest: fetch new photos and file them",
                                        "run", RUN_EXTRA),
        "frame-ingest.timer": TIMER.format(
            what="fetch new photos every 15 minutes",
            schedule="OnCalendar=*:0/15", delay="60"),
        "frame-ingest-resweep.service": service(
            setup, "frame-ingest: nightly duplicate sweep of the whole library",
            "--quiet resweep", RESWEEP_EXTRA, online=False),
        "frame-ingest-resweep.timer": TIMER.format(
            what="sweep the library for duplicates every night",
            schedule="OnCalendar=*-*-* 03:00:00", delay="300"),
        "frame-ingest-watch.service": service(
            setup, "frame-ingest: wait for new e-mail (IMAP IDLE) and file it at once",
            "watch", WATCH_EXTRA, install=f"[Install]\nWantedBy={target}\n"),
        WEB_UNIT: service(
            setup, "frame-ingest: the web page on the home network", "serve", WEB_EXTRA,
            install=f"[Install]\nWantedBy={target}\n", families=WEB,
            writable=setup.writable + setup.web_writable),
    }


RUN_EXTRA = """\
# one pass, then exit; the timer starts the next one
Type=oneshot
# 75 = another frame-ingest holds the lock (e.g. the resweep): try again next time
SuccessExitStatus=75
"""

RESWEEP_EXTRA = """\
# one pass, then exit
Type=oneshot
# 75 = a fetch is running: the next night will do
SuccessExitStatus=75
# the frame's display comes first: lowest CPU priority...
Nice=19
# ...disk I/O only when nobody else wants the SD card...
IOSchedulingClass=idle
# ...and scheduled as a batch job (longer slices, never preempting the display)
CPUSchedulingPolicy=batch
"""

WATCH_EXTRA = """\
# runs until stopped
Type=simple
# a crash or a lost connection: start again after a pause
Restart=on-failure
RestartSec=30
"""

WEB_UNIT = "frame-ingest-web.service"

WEB_EXTRA = """\
# runs until stopped
Type=simple
# a crash: start again after a pause
Restart=on-failure
RestartSec=10
# answers only addresses of the home network (and the Pi itself): never the internet
IPAddressDeny=any
IPAddressAllow=localhost link-local 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7
# also writable (ReadWritePaths= below): removed_folder (Remove from frame) and the
# configuration file's folder ("Allow this sender" rewrites the file)
"""

TIMER = """\
[Unit]
Description=frame-ingest: {what}

[Timer]
# when: {what}
{schedule}
# catch up on a run missed while the Pi was off
Persistent=true
# do not hit the mail server at exactly the same second every time
RandomizedDelaySec={delay}

[Install]
# started at boot along with the other timers
WantedBy=timers.target
"""


def find_executable() -> str:
    """The command that starts this frame-ingest, as absolute, shell-quoted words.

    The console script that was called, with links resolved (``~/.local/bin/frame-ingest``
    is a link into the venv ``install.sh`` made), else the one next to the running
    interpreter (``venv/bin/python -m pipeline``; the interpreter path is not resolved, as
    that would leave the venv). A pyenv shim on PATH needs pyenv's environment, which
    systemd does not give.
    """
    invoked = Path(sys.argv[0])
    if invoked.name == "frame-ingest" and invoked.exists():
        return shlex.quote(str(invoked.resolve()))
    sibling = Path(sys.executable).parent / "frame-ingest"
    if sibling.exists():
        return shlex.quote(str(sibling))
    found = shutil.which("frame-ingest")
    if found and "shims" not in Path(found).parts:
        return shlex.quote(str(Path(found).resolve()))
    return f"{shlex.quote(sys.executable)} -m pipeline"


def shipped_setup() -> Setup:
    """What the example units in ``systemd/`` are rendered with (``sh install.sh`` as user
    ``pi`` on Raspberry Pi OS: its venv's executable; default folders)."""
    home = Path("/home/pi")
    return Setup(command=str(home / ".local/share/frame-ingest-venv/bin/frame-ingest"),
                 config=None,
                 writable=(home / "Pictures", home / "DuplicatePictures",
                           home / "RejectedPictures", home / ".local/share/frame-ingest"),
                 user="pi", web_writable=(home / "DeletedPictures",))


def setup_for(config: Config, user_units: bool) -> Setup:
    """The real executable, configuration file and folders; system units run as the user
    who called (``sudo`` gives SUDO_USER), with that user's home and configuration."""
    user = None if user_units else (os.environ.get("SUDO_USER") or getpass.getuser())
    if user and os.environ.get("SUDO_USER"):
        home = pwd.getpwnam(user).pw_dir
        if Path.home() != Path(home):  # sudo gave us root's HOME: read the user's config
            os.environ["HOME"] = home
            config = load_config(str(config.path) if config.path else None)
    library = config.library
    return Setup(command=find_executable(),
                 config=config.path.resolve() if config.path else None,
                 writable=(library.pictures, library.quarantine, library.rejected,
                           library.state_dir),
                 user=user, web_writable=(library.removed_folder,) + (
                     (config.path.resolve().parent,) if config.path else ()))


def unit_folder(user_units: bool) -> Path:
    if not user_units:
        return Path("/etc/systemd/system")
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "systemd" / "user"


def install(config: Config, user: bool = False, dry_run: bool = False) -> int:
    """Write the units, reload systemd, enable the timers; print every step."""
    setup = setup_for(config, user)
    folder = unit_folder(user)
    systemctl = ["systemctl", *(["--user"] if user else [])]
    commands = [systemctl + ["daemon-reload"], systemctl + ["enable", "--now", *TIMERS]]
    if config.web.enabled:      # the page only when [web] enabled = true
        commands.append(systemctl + ["enable", "--now", WEB_UNIT])
    for name, text in render(setup).items():
        if dry_run:
            print(f"# --- would write {folder / name} ---\n{text}")
        else:
            _write_unit(folder / name, text)
            print(f"wrote {folder / name}")
    for path in setup.writable + setup.web_writable:  # ReadWritePaths= must exist
        if dry_run:
            print(f"would create folder {path}")
        else:
            path.mkdir(parents=True, exist_ok=True)
    for command in commands:
        print(("would run: " if dry_run else "running: ") + shlex.join(command))
        if not dry_run:
            _run(command)
    print("the IMAP IDLE watcher is installed but not enabled; to use it: "
          + shlex.join(systemctl + ["enable", "--now", "frame-ingest-watch.service"]))
    if not config.web.enabled:
        print("the web page is installed but not enabled; to use it, set [web] enabled = true,"
              " run frame-ingest web-password and install-systemd again")
    return 0


def _write_unit(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise PipelineError(f"{path}: cannot write the unit: {exc.strerror or exc} "
                            "(system units need root: run with sudo, or use --user)") from exc


def _run(command: list[str]) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except OSError as exc:
        raise PipelineError(f"{command[0]}: cannot run: {exc.strerror or exc}") from exc
    if result.returncode != 0:
        raise PipelineError(f"{shlex.join(command)} failed: {result.stderr.strip()}")
