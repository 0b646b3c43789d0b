"""The routes of the page: login, the lists, the previews and the four buttons.

Pages are bottle routes rendered with bottle's SimpleTemplate (``templates/``), which
HTML-escapes every ``{{value}}``; every text from the store also goes through
``text.shown`` (control characters and bytes that are not UTF-8 made visible). GET never
changes anything; every POST passes ``post_checks`` (Origin, session, CSRF token) before
its action (``actions.py``) runs. Ids in the URL are integers (bottle's ``<id:int>``
filter), so no request can name a path.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from pathlib import Path

import bottle

from pipeline import passwords
from pipeline.config import Config, load_config
from pipeline.errors import PipelineError
from pipeline.previews import preview_jpeg
from pipeline.store import Store
from pipeline.text import shown
from pipeline.web import actions, listings
from pipeline.web.security import (LOGIN_COOKIE, MAX_BODY, SESSION_COOKIE, SESSION_SECONDS,
                                   LoginLimiter, Sessions, guard, same_origin)

log = logging.getLogger("frame-ingest")

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
PREVIEW_SIDE = 320
_PAGE_NUMBER = re.compile(r"[1-9][0-9]{0,5}")

bottle.BaseRequest.MEMFILE_MAX = MAX_BODY     # bottle answers 413 past it, too


class WebApp:
    """One server's state: the configuration, the sessions, the login limiter."""

    def __init__(self, config: Config):
        self.config = config
        self.sessions = Sessions()
        self.limiter = LoginLimiter()
        self.flashes: dict[str, str] = {}
        self.readers = threading.local()
        self.bottle = bottle.Bottle(catchall=True)
        self.bottle.error_handler.update({code: self.error_page for code in
                                          (400, 403, 404, 405, 409, 413, 429, 500, 503)})
        self.routes()

    def store(self) -> Store:
        """This thread's connection for reading (opened once: no temp-file probe of the
        state directory at every page view); actions open their own under the lock."""
        store = getattr(self.readers, "store", None)
        if store is None:
            store = self.readers.store = Store(self.config.database)
        return store

    def wsgi(self):
        return guard(self.bottle)

    # --- routes ------------------------------------------------------------------

    def routes(self) -> None:
        route = self.bottle.route
        route("/", "GET", lambda: bottle.redirect("/arrivals", 303))
        route("/static/style.css", "GET", self.style)
        route("/login", "GET", self.login_page)
        route("/login", "POST", self.login)
        route("/logout", "POST", self.logout)
        for name in listings.PAGES:
            route(f"/{name}", "GET", self.listing_route(name))
        route("/preview/<decision_id:int>", "GET", self.preview)
        route("/preview/<decision_id:int>/matched", "GET", self.preview_matched)
        route("/preview/removed/<removal_id:int>", "GET", self.preview_removed)
        route("/restore", "POST", self.action_route(self.do_restore))
        route("/remove", "POST", self.action_route(self.do_remove))
        route("/undo-removal", "POST", self.action_route(self.do_undo_removal))
        route("/allow-sender", "POST", self.action_route(self.do_allow_sender))

    def style(self):
        return bottle.static_file("style.css", root=str(STATIC), mimetype="text/css")

    def login_page(self, message: str = "", status: int = 200):
        cookie = bottle.request.get_cookie(LOGIN_COOKIE) or ""
        if len(cookie) < 32:
            cookie = secrets.token_urlsafe(32)
            self.set_cookie(LOGIN_COOKIE, cookie, max_age=3600)
        bottle.response.status = status
        return self.render("login", title="Log in", message=message,
                           csrf=self.sessions.csrf_token(cookie), nav=False)

    def login(self):
        request = bottle.request
        if not same_origin(request.headers.get("Origin"), *self.origin_parts()):
            bottle.abort(403, "This form must be sent from this page (Origin check).")
        if not self.sessions.csrf_ok(request.get_cookie(LOGIN_COOKIE),
                                     request.forms.getunicode("csrf")):
            return self.login_page("The form was stale; please try again.", 403)
        address = request.environ.get("REMOTE_ADDR") or "?"    # not X-Forwarded-For
        wait = self.limiter.wait_seconds(address)
        if wait:
            return self.login_page(f"Too many attempts; try again in {wait // 60 + 1} "
                                   "minute(s).", 429)
        stored = passwords.read_hash(self.config.library.state_dir)
        password = request.forms.getunicode("password") or ""
        if stored is None or not passwords.verify_password(password, stored):
            self.limiter.failed(address)
            log.warning("web: failed login from %s", address)
            return self.login_page("Wrong password.", 403)
        self.limiter.succeeded(address)
        token = self.sessions.start()
        self.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS)
        bottle.redirect("/arrivals", 303)

    def logout(self):
        self.post_checks()
        self.sessions.end(bottle.request.get_cookie(SESSION_COOKIE))
        bottle.response.delete_cookie(SESSION_COOKIE, path="/")
        bottle.redirect("/login", 303)

    def listing_route(self, name: str):
        def handler():
            token = self.session_or_login()
            number = self.page_number()
            page = listings.PAGES[name](self.config, self.store(), number)
            return self.render(name, title=page.title, page=page, csrf=self.csrf(token),
                               flash=self.flashes.pop(token, ""), nav=True, current=name)
        return handler

    def preview(self, decision_id: int):
        self.session_or_login()
        return self.jpeg(listings.file_of(self.config, self.store(), decision_id))

    def preview_matched(self, decision_id: int):
        self.session_or_login()
        return self.jpeg(listings.matched_file_of(self.config, self.store(), decision_id))

    def preview_removed(self, removal_id: int):
        self.session_or_login()
        return self.jpeg(listings.removed_file_of(self.config, self.store(), removal_id))

    # --- actions -----------------------------------------------------------------

    def action_route(self, action):
        def handler():
            token = self.post_checks()
            try:
                message, back = action(self.form_id())
            except actions.Busy as exc:
                bottle.abort(503, str(exc))
            except actions.NotFound as exc:
                bottle.abort(404, str(exc))
            except PipelineError as exc:
                bottle.abort(409, str(exc))
            self.flashes[token] = shown(message)
            bottle.redirect(back, 303)
        return handler

    def do_restore(self, decision_id: int) -> tuple[str, str]:
        target = actions.restore(self.config, decision_id)
        return f"Restored to Pictures as {target.name}; it will not be taken for a " \
               "duplicate again.", "/quarantine"

    def do_remove(self, decision_id: int) -> tuple[str, str]:
        target = actions.remove_from_frame(self.config, decision_id)
        return f"Removed from the frame; kept as {target}.", "/arrivals"

    def do_undo_removal(self, removal_id: int) -> tuple[str, str]:
        target = actions.undo_removal(self.config, removal_id)
        return f"Back on the frame as {target.name}.", "/removed"

    def do_allow_sender(self, sender_id: int) -> tuple[str, str]:
        address = actions.allow_sender(self.config, sender_id)
        self.config = load_config(str(self.config.path))
        return f"{address} may send photos now; the next run fetches the mail that was " \
               "refused.", "/senders"

    # --- checks ------------------------------------------------------------------

    def session_or_login(self) -> str:
        token = bottle.request.get_cookie(SESSION_COOKIE)
        if not self.sessions.valid(token):
            bottle.redirect("/login", 303)
        return token

    def post_checks(self) -> str:
        """Origin, then the session, then the CSRF token; the session token when all hold."""
        request = bottle.request
        if not same_origin(request.headers.get("Origin"), *self.origin_parts()):
            bottle.abort(403, "This form must be sent from this page (Origin check).")
        token = request.get_cookie(SESSION_COOKIE)
        if not self.sessions.valid(token):
            bottle.abort(403, "Not logged in (or the session ended); log in again.")
        if not self.sessions.csrf_ok(token, request.forms.getunicode("csrf")):
            bottle.abort(403, "The form was stale (CSRF check); reload the page and try again.")
        return token

    def origin_parts(self) -> tuple[str, str]:
        parts = bottle.request.urlparts
        return parts.scheme, bottle.request.get_header("Host", "")

    def page_number(self) -> int:
        raw = bottle.request.query.get("page", "1")
        if not _PAGE_NUMBER.fullmatch(raw):
            bottle.abort(400, "page: expected a page number")
        return int(raw)

    def form_id(self) -> int:
        raw = bottle.request.forms.get("id", "")
        if not re.fullmatch(r"[0-9]{1,18}", raw):
            bottle.abort(400, "id: expected a number")
        return int(raw)

    def csrf(self, token: str) -> str:
        return self.sessions.csrf_token(token)

    # --- responses ---------------------------------------------------------------

    def set_cookie(self, name: str, value: str, max_age: int) -> None:
        bottle.response.set_cookie(name, value, path="/", httponly=True, samesite="strict",
                                   secure=bottle.request.urlparts.scheme == "https",
                                   max_age=max_age)

    def jpeg(self, path: Path | None):
        data = preview_jpeg(path, PREVIEW_SIDE) if path else None
        if data is None:
            bottle.abort(404, "no preview")
        bottle.response.content_type = "image/jpeg"
        bottle.response.set_header("Cache-Control", "private, max-age=300")
        return data

    def render(self, name: str, **values) -> str:
        template = bottle.SimpleTemplate(name=name, lookup=[str(TEMPLATES)])
        return template.render(**values)

    def error_page(self, error: bottle.HTTPError) -> str:
        status = error.status_code
        if status >= 500 and status != 503:
            log.error("web: %s %s failed: %s", bottle.request.method, bottle.request.path,
                      error.exception or error.body)
        message = error.body if isinstance(error.body, str) and status < 500 or status == 503 \
            else "Something went wrong; see the log (journalctl -u frame-ingest-web)."
        return self.render("error", title=error.status_line, message=shown(message),
                           nav=False)


def create_app(config: Config):
    """The WSGI application for ``config`` (what ``serve`` hands to waitress)."""
    return WebApp(config).wsgi()
