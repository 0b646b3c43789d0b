"""Fetchers: each turns what it finds into staged items (see base.Source).

``enabled_sources`` is the one list of them; a new source adds one line here.
"""

from __future__ import annotations

from pipeline.config import Config


def enabled_sources(config: Config, only: str | None = None) -> list:
    """The sources switched on in ``config`` (or just ``only``, which must be switched on:
    ConfigError otherwise), in a fixed order."""
    if only is not None:
        config.require_enabled(only)
    from pipeline.sources.folder import FolderSource
    from pipeline.sources.imap import ImapSource

    def dropbox_source():
        from pipeline.sources.dropbox import DropboxSource  # imports the SDK only when used
        return DropboxSource(config.dropbox, config.library.state_dir)

    candidates = [
        ("folder", config.folder.enabled, lambda: FolderSource(config.folder)),
        ("imap", config.imap.enabled, lambda: ImapSource(config.imap)),
        ("dropbox", config.dropbox.enabled, dropbox_source),
    ]
    return [build() for name, enabled, build in candidates
            if enabled and only in (None, name)]


def source_names() -> list[str]:
    return ["folder", "imap", "dropbox"]
