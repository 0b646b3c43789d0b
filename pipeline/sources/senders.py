"""Who may put pictures on the family's wall: the sender rules of the IMAP source.

Two checks, both pure functions of the parsed message:

1. **Allowlist.** The single From address must equal an entry of ``allowed_senders`` or lie
   in a domain listed as ``"@domain"`` (exact domain, not its subdomains), unless
   ``allow_any_sender`` is set. A From header is trivial to forge, hence:
2. **Authenticated sender** (``require_authenticated_sender``). The receiving mail server
   checks DKIM/DMARC and records the result in an ``Authentication-Results`` header
   (RFC 8601) that it puts at the *top* of the message. Anything lower down was written by
   someone earlier on the path, possibly the forger, so only the topmost
   Authentication-Results header is trusted (and, when ``authserv_id`` is set, only if it
   names that server). It must show ``dmarc=pass`` for the From domain, or ``dkim=pass``
   with ``header.d`` (or the domain of ``header.i``) equal to the From domain or a parent
   domain of it (DMARC's relaxed alignment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([a-z0-9_-]+)\s*=\s*([a-z]+)", re.IGNORECASE)
_PROPERTY = re.compile(r"\b(header\.[a-z]+)\s*=\s*\"?([^\s;\"]+)\"?", re.IGNORECASE)


@dataclass(frozen=True)
class SenderRules:
    allowed: tuple[str, ...]            # lower-case addresses and "@domain" entries
    allow_any: bool
    require_authenticated: bool
    authserv_id: str = ""               # "" = trust the topmost header whoever wrote it


def refusal(sender: str, message: EmailMessage, rules: SenderRules) -> str:
    """Why the message must not be taken ("" when it may be)."""
    if not sender:
        return "no single, unambiguous From address"
    if not rules.allow_any and not is_allowed(sender, rules.allowed):
        return f"sender {sender} is not in allowed_senders"
    if rules.require_authenticated:
        return authentication_problem(sender, message.get_all("authentication-results") or [],
                                      rules.authserv_id)
    return ""


def is_allowed(sender: str, allowed: tuple[str, ...]) -> bool:
    sender = sender.lower()
    domain = sender.rpartition("@")[2]
    return any(entry == sender or (entry.startswith("@") and entry[1:] == domain)
               for entry in (item.strip().lower() for item in allowed))


def authentication_problem(sender: str, headers: list, authserv_id: str = "") -> str:
    """"" if the topmost Authentication-Results header vouches for ``sender``'s domain."""
    if not headers:
        return f"sender {sender}: no Authentication-Results header from the receiving server"
    server, results = parse_authentication_results(str(headers[0]))
    if authserv_id and server.lower() != authserv_id.lower():
        return (f"sender {sender}: the topmost Authentication-Results header is from "
                f"{server or '?'}, not from {authserv_id}")
    domain = sender.rpartition("@")[2].lower()
    for method, result, properties in results:
        if result != "pass":
            continue
        if method == "dmarc" and _aligned(properties.get("header.from", domain), domain):
            return ""
        signer = properties.get("header.d") or properties.get("header.i", "").rpartition("@")[2]
        if method == "dkim" and signer and _aligned(signer, domain):
            return ""
    return f"sender {sender}: no dmarc=pass or dkim=pass for {domain} in Authentication-Results"


def parse_authentication_results(text: str) -> tuple[str, list[tuple[str, str, dict]]]:
    """(authserv-id, [(method, result, {property: value})]) of one header value."""
    text = " ".join(text.split())
    while _COMMENT.search(text):
        text = _COMMENT.sub(" ", text)
    pieces = text.split(";")
    server = pieces[0].split()[0] if pieces[0].split() else ""
    results = []
    for piece in pieces[1:]:
        match = _RESULT.match(piece)
        if not match:
            continue
        properties = {name.lower(): value.lower() for name, value in _PROPERTY.findall(piece)}
        results.append((match.group(1).lower(), match.group(2).lower(), properties))
    return server, results


def _aligned(signer: str, from_domain: str) -> bool:
    """The signing domain is the From domain or a parent of it (with at least one dot)."""
    signer = signer.strip().strip(".").lower()
    return signer == from_domain or ("." in signer and from_domain.endswith("." + signer))
