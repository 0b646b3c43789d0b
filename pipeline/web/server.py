"""Starting the page: refuse without [web] enabled or a password, then serve with waitress.

waitress is a pure-Python, threaded WSGI server: two threads are plenty for a family,
``max_request_body_size`` refuses large bodies (413) even when they come chunked, and
``ident`` is blank so responses do not name the server. A TLS reverse proxy on the Pi
itself (127.0.0.1) may say ``X-Forwarded-Proto: https``; from anyone else the header is
dropped. That is what makes the session cookie ``Secure``.
"""

from __future__ import annotations

import logging
import shlex

from pipeline import passwords
from pipeline.config import Config
from pipeline.errors import ConfigError
from pipeline.web.security import MAX_BODY

log = logging.getLogger("frame-ingest")


def serve(config: Config) -> int:
    """Serve until SIGTERM or Ctrl-C (then return 0)."""
    check_ready(config)
    import waitress
    from pipeline.web.app import create_app
    host, port = config.web.address
    log.info("web: serving http://%s:%d/ (state in %s)", host if ":" not in host else
             f"[{host}]", port, config.library.state_dir)
    try:
        waitress.serve(create_app(config), host=host, port=port, threads=2,
                       max_request_body_size=MAX_BODY, ident="", channel_timeout=60,
                       trusted_proxy="127.0.0.1", trusted_proxy_headers={"x-forwarded-proto"},
                       clear_untrusted_proxy_headers=True, _quiet=True)
    except OSError as exc:
        raise ConfigError(f"{config.label}: [web] listen: cannot listen on {config.web.listen}:"
                          f" {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        log.info("web: stopped")
    return 0


def check_ready(config: Config) -> None:
    """[web] enabled and a password set, else one line saying what to do (exit 2)."""
    if not config.web.enabled:
        raise ConfigError(f"{config.label}: [web] enabled: false; set enabled = true to "
                          "serve the page")
    config.check_rules("web")
    if passwords.read_hash(config.library.state_dir) is None:
        words = ["frame-ingest"] + (["--config", str(config.path)] if config.path else [])
        raise ConfigError(f"no password for the web page yet; run: "
                          f"{shlex.join(words + ['web-password'])}")
