"""Configuration: a TOML file read with tomllib into frozen dataclasses.

Each section is a dataclass whose fields carry their own rule (type, allowed values, range)
in ``field(metadata=...)``; one generic loader checks a parsed TOML table against them and
gathers *every* problem into one ``ConfigError``, each line naming the file, the section and
the key: ``config.toml: [dedupe] method: expected one of "exact", "rms", "similar", got "fast"``.
A new section is a new dataclass plus one line in ``SECTIONS``; nothing else changes.

Rules that span fields (IMAP's ``security = "none"`` only to a loopback host, Dropbox's
``move_to`` not containing ``folder``) live in the section's ``rules()`` method, one ``if``
per rule, each naming the key to blame. ``parse_config`` runs them for every section whose
fields are well-formed, and for a source only when it is enabled: a disabled source is never
talked to, so its unfinished settings harm nothing. So every problem is found before anything
runs (exit 2), not when a source is built or fetched.

Where the file is looked up: ``--config PATH``, ``$FRAME_INGEST_CONFIG``,
``$XDG_CONFIG_HOME/frame-ingest/config.toml`` (default ``~/.config``), else built-in defaults.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pipeline.errors import ConfigError
from pipeline.formats import FORMATS
from pipeline.secrets import warn_if_readable_by_others

ENV_CONFIG = "FRAME_INGEST_CONFIG"
MIB = 1024 * 1024           # every *_mb key is in MiB (docs/configuration.md)
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")     # a Microsoft tenant name, id or domain

# What a rules() method yields: the key to blame, and what is wrong with it.
Problem = tuple[str, str]


def setting(default: Any, kind: str, *, choices: tuple = (), minimum: float | None = None,
            maximum: float | None = None) -> Any:
    """Declare a config field: ``kind`` is str, path, bool, int, float or strlist."""
    rule = {"kind": kind, "choices": choices, "minimum": minimum, "maximum": maximum}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=rule)
    return field(default=default, metadata=rule)


LIBRARY_FOLDERS = ("pictures", "quarantine", "rejected", "state_dir", "removed_folder")


def _nested(folder: Path, others: dict[Path, str]) -> str:
    """How ``folder`` lies inside one of ``others`` (or holds one), "" when apart."""
    for other, key in others.items():
        if folder.is_relative_to(other):
            return f"inside {key} ({other}); keep the folders apart"
        if other.is_relative_to(folder):
            return f"holds {key} ({other}); keep the folders apart"
    return ""


@dataclass(frozen=True)
class LibraryConfig:
    pictures: Path = setting("~/Pictures", "path")
    quarantine: Path = setting("~/DuplicatePictures", "path")
    rejected: Path = setting("~/RejectedPictures", "path")
    state_dir: Path = setting("~/.local/share/frame-ingest", "path")
    # what the frame shows (docs/frame-library.md)
    removed_folder: Path = setting("~/DeletedPictures", "path")   # picframe's delete folder
    remember_removed: bool = setting(True, "bool")
    frame_formats: list = setting(["JPEG", "PNG", "HEIF"], "strlist")
    after_promote: list = setting([], "strlist")   # a command, no shell; paths on stdin
    after_promote_timeout: float = setting(30.0, "float", minimum=0.1, maximum=3600.0)

    def rules(self) -> Iterator[Problem]:
        """Each folder has one job: a photo moved "to quarantine" must leave Pictures, and
        no folder may hold another (the scan of Pictures would take in the quarantine and
        rename its files again at every resweep)."""
        yield from self.frame_rules()
        seen: dict[Path, str] = {}
        folders = {key: getattr(self, key).resolve() for key in LIBRARY_FOLDERS}
        for key, folder in folders.items():
            if folder in seen:
                yield key, f"the same folder as {seen[folder]} ({folder}); each needs its own"
            seen.setdefault(folder, key)
        for key, folder in folders.items():
            for other_key, other in folders.items():
                if folder != other and folder.is_relative_to(other):
                    yield key, f"inside {other_key} ({other}); keep the folders apart"

    def frame_rules(self) -> Iterator[Problem]:
        """What the frame shows: known format names, JPEG among them (conversions make
        JPEG), and a command that names a program."""
        unknown = [name for name in self.frame_formats if name.upper() not in FORMATS]
        if unknown:
            yield "frame_formats", (f"unknown format {_show(unknown[0])}; known: "
                                    + ", ".join(f'"{name}"' for name in FORMATS))
        elif "JPEG" not in {name.upper() for name in self.frame_formats}:
            yield "frame_formats", ('must include "JPEG": photos in other formats are '
                                    "converted to JPEG for the frame")
        if self.after_promote and not self.after_promote[0].strip():
            yield "after_promote", ("the first word must be the program to run, got an "
                                    "empty string")


@dataclass(frozen=True)
class DedupeConfig:
    method: str = setting("similar", "str", choices=("exact", "rms", "similar"))
    keep: str = setting("best", "str", choices=("best", "first"))
    rms_threshold: float = setting(0.01, "float", minimum=0.0, maximum=255.0)
    # "similar": perceptual-hash prefilter, then the confirm test on the thumbnails.
    hash_distance: int = setting(8, "int", minimum=0, maximum=32)  # ignored since issue 12
    thumb_rms: float = setting(0.0065, "float", minimum=0.0, maximum=1.0)
    luma_delta: float = setting(0.004, "float", minimum=0.0, maximum=1.0)
    mean_delta: float = setting(0.015, "float", minimum=0.0, maximum=1.0)
    # keep = "best": the newcomer displaces the library copy only with this many times the pixels.
    best_pixel_ratio: float = setting(1.2, "float", minimum=1.0, maximum=100.0)


@dataclass(frozen=True)
class GateConfig:
    max_megapixels: float = setting(100.0, "float", minimum=1.0, maximum=2000.0)
    max_file_mb: float = setting(200.0, "float", minimum=1.0, maximum=10000.0)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * MIB)


@dataclass(frozen=True)
class FolderSourceConfig:
    enabled: bool = setting(True, "bool")
    path: Path = setting("~/PhotoInbox", "path")
    recursive: bool = setting(True, "bool")
    settle_seconds: float = setting(5.0, "float", minimum=0.0, maximum=3600.0)


@dataclass(frozen=True)
class DropboxSourceConfig:
    """A shared Dropbox folder (see docs/dropbox.md). Paths in Dropbox start with "/"."""
    enabled: bool = setting(False, "bool")
    app_key: str = setting("", "str")
    # "" = <state_dir>/dropbox-refresh-token, where `frame-ingest dropbox-auth` writes it
    refresh_token_file: str = setting("", "str")
    refresh_token_env: str = setting("", "str")     # name of an env var holding the token
    folder: str = setting("/Family Photos", "str")
    recursive: bool = setting(True, "bool")
    after_ingest: str = setting("keep", "str", choices=("keep", "move", "delete"))
    move_to: str = setting("/Family Photos/On the frame", "str")
    max_file_mb: float = setting(100.0, "float", minimum=0.001, maximum=10000.0)
    ca_file: str = setting("", "str")               # "" = REQUESTS_CA_BUNDLE or the SDK's own
    timeout_seconds: float = setting(60.0, "float", minimum=1.0, maximum=3600.0)
    retries: int = setting(4, "int", minimum=0, maximum=20)

    @property
    def folder_path(self) -> str:
        """``folder`` in API form: "" for the whole Dropbox, else "/A/B"."""
        return dropbox_path(self.folder)

    @property
    def move_to_path(self) -> str | None:
        """Where ``after_ingest = "move"`` files go (API form), None for keep and delete."""
        return dropbox_path(self.move_to) if self.after_ingest == "move" else None

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * MIB)

    def rules(self) -> Iterator[Problem]:
        """Settings without which the source cannot work, or would ingest its own output."""
        if not self.app_key.strip():
            yield "app_key", ("empty: create a Dropbox app and copy its app key "
                              "(see docs/dropbox.md)")
        if not _is_dropbox_path(self.folder):
            yield "folder", f'a Dropbox path starts with "/", got "{self.folder}"'
        elif self.after_ingest == "move":
            if not _is_dropbox_path(self.move_to):
                yield "move_to", f'a Dropbox path starts with "/", got "{self.move_to}"'
            elif _dropbox_contains(self.move_to_path, self.folder_path):
                yield "move_to", (f'"{self.move_to}" must be a folder that does not contain '
                                  f'folder "{self.folder}" (after_ingest = "move")')


@dataclass(frozen=True)
class ImapSourceConfig:
    """[sources.imap]: the family's photo mailbox (see docs/imap.md)."""
    enabled: bool = setting(False, "bool")
    host: str = setting("imap.example.com", "str")
    port: int = setting(993, "int", minimum=1, maximum=65535)
    security: str = setting("ssl", "str", choices=("ssl", "starttls", "none"))
    username: str = setting("", "str")
    password_file: str = setting("", "str")       # "" = not used; ~ and $VARS expand
    password_env: str = setting("", "str")        # name of an environment variable
    # "oauth2": sign in once with `frame-ingest imap-auth` (Outlook.com, Microsoft 365)
    auth: str = setting("password", "str", choices=("password", "oauth2"))
    oauth2_provider: str = setting("microsoft", "str", choices=("microsoft", "custom"))
    oauth2_client_id: str = setting("", "str")    # the app registration's client id
    oauth2_tenant: str = setting("consumers", "str")    # microsoft: or "organizations", an id
    oauth2_device_url: str = setting("", "str")   # custom: RFC 8628 device authorization URL
    oauth2_token_url: str = setting("", "str")    # custom: RFC 6749 token URL
    oauth2_scope: str = setting("", "str")        # "" = microsoft's IMAP scope
    oauth2_token_file: str = setting("", "str")   # "" = <state_dir>/imap-oauth2-token
    oauth2_ca_file: str = setting("", "str")      # "" = REQUESTS_CA_BUNDLE or certifi's
    folder: str = setting("INBOX", "str")
    processed_folder: str = setting("frame-ingest/processed", "str")  # "" = leave mail in place
    mark_seen: bool = setting(True, "bool")
    allowed_senders: list = setting([], "strlist")
    allow_any_sender: bool = setting(False, "bool")
    require_authenticated_sender: bool = setting(False, "bool")
    authserv_id: str = setting("", "str")         # "" = trust the topmost header's writer
    max_attachment_mb: float = setting(50.0, "float", minimum=0.0, maximum=10000.0)
    max_message_mb: float = setting(60.0, "float", minimum=0.0, maximum=100000.0)
    max_messages_per_run: int = setting(200, "int", minimum=1, maximum=1_000_000)
    min_image_side: int = setting(200, "int", minimum=0, maximum=100_000)
    ca_file: str = setting("", "str")             # "" = the system's CA bundle
    timeout_seconds: float = setting(60.0, "float", minimum=1.0, maximum=3600.0)
    retry_attempts: int = setting(5, "int", minimum=1, maximum=100)
    retry_wait_seconds: float = setting(2.0, "float", minimum=0.0, maximum=3600.0)
    idle_seconds: float = setting(600.0, "float", minimum=1.0, maximum=1740.0)
    poll_seconds: float = setting(60.0, "float", minimum=1.0, maximum=86400.0)

    @property
    def max_attachment_bytes(self) -> int:
        return int(self.max_attachment_mb * MIB)

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb * MIB)

    def rules(self) -> Iterator[Problem]:
        """Combinations that are unsafe or cannot work."""
        if self.security == "none" and not is_loopback(self.host):
            secret = "access token" if self.auth == "oauth2" else "password"
            yield "security", (f'"none" would send the {secret} in clear text to {self.host}; '
                               f'it is only allowed for a loopback host')
        if not self.allowed_senders and not self.allow_any_sender:
            yield "allowed_senders", ("empty, so nobody could send photos; list the family's "
                                      'addresses (or "@domain"), or set allow_any_sender = true')
        if not self.username:
            yield "username", "empty"
        if self.auth == "password" and bool(self.password_file) == bool(self.password_env):
            yield "password_file", ("set exactly one of password_file and password_env ("
                                    + ("both are set)" if self.password_file else
                                       "neither is set)"))
        if self.processed_folder and \
                self.processed_folder.replace("/", ".") == self.folder.replace("/", "."):
            yield "processed_folder", "must differ from folder"
        yield from self.auth_rules()

    def auth_rules(self) -> Iterator[Problem]:
        """What ``auth = "oauth2"`` needs (``imap-auth`` checks these alone, before the
        source is enabled)."""
        if self.auth != "oauth2":
            return
        for key in ("password_file", "password_env"):
            if getattr(self, key):
                yield key, ('not used with auth = "oauth2" (the mailbox is opened with a '
                            "token from `frame-ingest imap-auth`); remove it")
        if not self.oauth2_client_id.strip():
            yield "oauth2_client_id", ("empty; put the application (client) id of your app "
                                       "registration here (docs/imap.md)")
        if self.oauth2_provider == "microsoft":
            if not _TENANT.fullmatch(self.oauth2_tenant):
                yield "oauth2_tenant", ('expected "consumers" (Outlook.com), "organizations" '
                                        "or a tenant id or domain (Microsoft 365), got "
                                        + _show(self.oauth2_tenant))
            for key in ("oauth2_device_url", "oauth2_token_url"):
                if getattr(self, key):
                    yield key, 'only used with oauth2_provider = "custom"'
            return
        for key in ("oauth2_device_url", "oauth2_token_url"):
            value = getattr(self, key)
            if not value.startswith("https://") or len(value) <= len("https://"):
                yield key, ('expected an https:// address (oauth2_provider = "custom"), got '
                            + _show(value))
        if not self.oauth2_scope.strip():
            yield "oauth2_scope", ('empty; with oauth2_provider = "custom" say which scope '
                                   "gives IMAP access (and a refresh token)")


@dataclass(frozen=True)
class ResweepConfig:
    exclude: list = setting([], "strlist")
    workers: int = setting(0, "int", minimum=0, maximum=256)
    # accepted and ignored since issue 12: the candidate search no longer uses the hash
    hash_distance: int = setting(7, "int", minimum=0, maximum=11)


@dataclass(frozen=True)
class CaptionsConfig:
    """Title and caption written into a promoted photo from where it came from
    (docs/captions.md; templates and their fields are ``pipeline/captions.py``'s)."""
    enabled: bool = setting(False, "bool")
    title: str = setting("{subject}", "str")
    caption: str = setting("{sender_name}", "str")
    max_length: int = setting(200, "int", minimum=0, maximum=2000)   # 0 = no limit
    overwrite: bool = setting(False, "bool")

    def rules(self) -> Iterator[Problem]:
        from pipeline.captions import template_problem
        for key in ("title", "caption"):
            if problem := template_problem(getattr(self, key)):
                yield key, problem


@dataclass(frozen=True)
class WebConfig:
    """[web]: the page on the home network (``frame-ingest serve``, docs/web.md)."""
    enabled: bool = setting(False, "bool")
    listen: str = setting("0.0.0.0:8420", "str")    # address:port; "[::]:8420" for IPv6

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of ``listen`` (checked by ``rules``)."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    def rules(self) -> Iterator[Problem]:
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            yield "listen", f'expected "address:port" such as "0.0.0.0:8420", got "{self.listen}"'
            return
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            if host != "localhost":
                yield "listen", f'expected an IP address before ":{port}", got "{host}"'


@dataclass(frozen=True)
class VideoConfig:
    """[video]: clips and Live Photos (docs/video.md)."""
    enabled: bool = setting(True, "bool")
    max_video_mb: float = setting(200.0, "float", minimum=1.0, maximum=100000.0)
    # the containers taken, by suffix: by default what picframe plays
    formats: list = setting([".mp4", ".mkv", ".flv", ".mov", ".avi", ".webm", ".hevc"],
                            "strlist")
    # a Live Photo / motion photo: "still" files the still (motion part to quarantine),
    # "both" files both, "video" files the motion part (still to quarantine)
    live_photos: str = setting("still", "str", choices=("still", "both", "video"))

    @property
    def max_video_bytes(self) -> int:
        return int(self.max_video_mb * MIB)

    def rules(self) -> Iterator[Problem]:
        from pipeline.video_formats import VIDEO_SUFFIXES
        for suffix in self.formats:
            normal = suffix.lower() if suffix.startswith(".") else "." + suffix.lower()
            if normal not in VIDEO_SUFFIXES:
                yield "formats", (f"{suffix!r} is not a video container frame-ingest reads; "
                                  f"known: {', '.join(sorted(VIDEO_SUFFIXES))}")


# (table name in the file, Config attribute, dataclass)
SECTIONS: list[tuple[str, str, type]] = [
    ("library", "library", LibraryConfig),
    ("dedupe", "dedupe", DedupeConfig),
    ("gate", "gate", GateConfig),
    ("sources.folder", "folder", FolderSourceConfig),
    ("sources.dropbox", "dropbox", DropboxSourceConfig),
    ("sources.imap", "imap", ImapSourceConfig),
    ("resweep", "resweep", ResweepConfig),
    ("captions", "captions", CaptionsConfig),
    ("web", "web", WebConfig),
    ("video", "video", VideoConfig),
]


@dataclass(frozen=True)
class Config:
    library: LibraryConfig
    dedupe: DedupeConfig
    gate: GateConfig
    folder: FolderSourceConfig
    resweep: ResweepConfig
    dropbox: DropboxSourceConfig
    imap: ImapSourceConfig
    web: WebConfig
    captions: CaptionsConfig = CaptionsConfig()
    video: VideoConfig = field(default_factory=VideoConfig)
    path: Path | None = None  # the file it came from, None for built-in defaults
    label: str = "built-in defaults"  # how problems name it: the path, or "built-in defaults"

    @property
    def staging_dir(self) -> Path:
        return self.library.state_dir / "staging"

    @property
    def database(self) -> Path:
        return self.library.state_dir / "store.sqlite3"

    def require_enabled(self, source: str) -> None:
        """Refuse a command naming a disabled source (``fetch dropbox``): its settings were
        not checked, and "disabled" means frame-ingest does not talk to it."""
        table = _table_of(source)
        if not getattr(self, source).enabled:
            raise ConfigError(f"{self.label}: [{table}] enabled: false, so frame-ingest does "
                              f"not use this source; set enabled = true first")

    def check_rules(self, attribute: str) -> None:
        """Apply a section's cross-field rules even if it is disabled (``dropbox-auth``
        links the account before the source is switched on)."""
        problems = list(_rule_problems(_table_of(attribute), getattr(self, attribute),
                                       self.label))
        if problems:
            raise ConfigError(problems)


def expand_path(text: str) -> Path:
    """Expand ``~`` and ``$VARS`` in a configured path."""
    return Path(os.path.expandvars(os.path.expanduser(text)))


def _unexpandable(text: str) -> str:
    """Why ``text`` cannot expand as written ("" when it can): an unset variable would stay
    a literal ``$VAR`` folder, an unknown ``~user`` a literal ``~user`` folder."""
    for match in re.finditer(r"\$(\w+)|\$\{([^}]*)\}", text):
        name = match.group(1) or match.group(2)
        if name not in os.environ:
            return f"${name} is not set"
    if text.startswith("~") and os.path.expanduser(text).startswith("~"):
        return f"{text.split('/')[0]}: no such user"
    return ""


def find_config_file(explicit: str | None) -> Path | None:
    """Return the configuration file to read, or None for built-in defaults."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    candidate = Path(base) / "frame-ingest" / "config.toml"
    return candidate if candidate.exists() else None


def load_config(explicit: str | None = None) -> Config:
    """Find, read and check the configuration; raise ConfigError listing every problem."""
    path = find_config_file(explicit)
    data: dict = {}
    label = str(path) if path else "built-in defaults"
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such configuration file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    config = parse_config(data, label, path)
    if path is not None:
        warn_if_readable_by_others(path, "the configuration file")
    return config


def parse_config(data: dict, label: str = "config", path: Path | None = None) -> Config:
    """Check a parsed TOML document against SECTIONS and build the Config."""
    problems: list[str] = []
    known_tables = {name for name, _, _ in SECTIONS}
    for table_name in _table_names(data):
        if table_name not in known_tables and not _is_parent_table(table_name, known_tables):
            problems.append(f"{label}: [{table_name}]: unknown section; known sections: "
                            + ", ".join(f"[{name}]" for name in sorted(known_tables)))
    sections = {}
    for table_name, attribute, section_class in SECTIONS:
        table = _lookup_table(data, table_name)
        if not isinstance(table, dict):
            problems.append(f"{label}: [{table_name}]: expected a table")
            table = {}
        found = len(problems)
        section = _build_section(section_class, table, f"{label}: [{table_name}]", problems)
        if len(problems) == found and getattr(section, "enabled", True):
            problems.extend(_rule_problems(table_name, section, label))
        sections[attribute] = section
    if not problems and sections["folder"].enabled:
        folders = {getattr(sections["library"], key).resolve(): f"[library] {key}"
                   for key in LIBRARY_FOLDERS}
        if problem := _nested(sections["folder"].path.resolve(), folders):
            problems.append(f"{label}: [sources.folder] path: {problem}")
    if problems:
        raise ConfigError(problems)
    return Config(path=path, label=label, **sections)


def _rule_problems(table_name: str, section: Any, label: str) -> Iterator[str]:
    """The section's cross-field rules (its ``rules()`` method, if any), as problem lines."""
    rules = getattr(section, "rules", None)
    for key, message in rules() if rules else ():
        yield f"{label}: [{table_name}] {key}: {message}"


def _table_of(attribute: str) -> str:
    return next(name for name, known, _ in SECTIONS if known == attribute)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dropbox_path(text: str) -> str:
    """A configured Dropbox path in API form: "" for the root, else "/A/B" (no trailing /)."""
    return text.strip().rstrip("/")


def _is_dropbox_path(text: str) -> bool:
    path = dropbox_path(text)
    return path == "" or path.startswith("/")


def _dropbox_contains(outer: str, inner: str) -> bool:
    """Whether Dropbox folder ``outer`` is ``inner`` or holds it (paths are case-blind)."""
    outer, inner = outer.lower(), inner.lower()
    return outer == "" or inner == outer or inner.startswith(outer + "/")


def _table_names(data: dict, prefix: str = "") -> list[str]:
    names = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            names.append(name)
            names.extend(_table_names(value, name + "."))
        elif not prefix:
            names.append(name)  # a top-level key that is not a table is unknown too
    return names


def _is_parent_table(name: str, known: set[str]) -> bool:
    return any(table.startswith(name + ".") for table in known)


def _lookup_table(data: dict, dotted: str) -> Any:
    table: Any = data
    for part in dotted.split("."):
        if not isinstance(table, dict):
            return {}
        table = table.get(part, {})
    return {key: value for key, value in table.items() if not isinstance(value, dict)} \
        if isinstance(table, dict) else table


def _build_section(section_class: type, table: dict, where: str, problems: list[str]) -> Any:
    fields = {item.name: item for item in dataclasses.fields(section_class)}
    values = {}
    for key, raw in table.items():
        if key not in fields:
            problems.append(f"{where} {key}: unknown key; allowed: {', '.join(fields)}")
            continue
        try:
            values[key] = _check_value(raw, fields[key].metadata)
        except ValueError as exc:
            problems.append(f"{where} {key}: {exc}")
    for name, item in fields.items():  # defaults of path fields need expanding too
        if name not in values and item.metadata.get("kind") == "path":
            values[name] = expand_path(item.default)
    return section_class(**values)


def _check_value(raw: Any, rule: dict) -> Any:
    kind = rule["kind"]
    if kind == "bool":
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, got {_show(raw)}")
        return raw
    if kind in ("int", "float"):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) \
                or (kind == "int" and not isinstance(raw, int)):
            noun = "an integer" if kind == "int" else "a number"
            raise ValueError(f"expected {noun}, got {_show(raw)}")
        if isinstance(raw, float) and not math.isfinite(raw):
            raise ValueError(f"expected a number, got {raw}")
        _check_range(raw, rule)
        return float(raw) if kind == "float" else raw
    if kind == "strlist":
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise ValueError(f"expected a list of strings, got {_show(raw)}")
        if any("\0" in item for item in raw):
            raise ValueError("a NUL character cannot be in a string")
        return list(raw)
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {_show(raw)}")
    if "\0" in raw:
        raise ValueError("a NUL character cannot be in a string")
    if rule["choices"] and raw not in rule["choices"]:
        allowed = ", ".join(f'"{choice}"' for choice in rule["choices"])
        raise ValueError(f"expected one of {allowed}, got {_show(raw)}")
    if kind == "path":
        if not raw.strip():
            raise ValueError("expected a path, got an empty string")
        if problem := _unexpandable(raw):
            raise ValueError(problem)
        return expand_path(raw)
    return raw


def _check_range(value: float, rule: dict) -> None:
    low, high = rule["minimum"], rule["maximum"]
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"expected a value from {low} to {high}, got {value}")


def _show(raw: Any) -> str:
    if isinstance(raw, str):
        return f'"{raw}"'
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return repr(raw)
