"""Who may see what: access tokens, browser sessions and CSRF tokens.

An admin token sees every tenant; a tenant token sees only its tenant. Tokens are kept
as SHA-256 digests and never appear in URLs or logs: a browser trades one for a session
cookie (HttpOnly, SameSite=Strict) at the login form; a program sends
`Authorization: Bearer TOKEN`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from dogqueue.core import validation as check
from dogqueue.core.errors import InvalidInput

#: Sessions kept at most; the oldest is dropped first.
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to: `tenant_id` None for an admin."""

    name: str
    tenant_id: str | None = None

    @property
    def actor(self) -> str:
        """How actions by this principal are recorded in the log."""
        return f"web:{self.name}"

    def may_see(self, tenant_id: str) -> bool:
        """Whether this principal may read and act on `tenant_id`'s jobs."""
        return self.tenant_id is None or self.tenant_id == tenant_id


@dataclass(frozen=True)
class Session:
    """A logged-in browser: who it is and the token its forms must carry."""

    principal: Principal
    csrf_token: str


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenStore:
    """The valid access tokens, and the sessions made from them."""

    def __init__(self, grants: Iterable[tuple[str, Principal]]) -> None:
        self._principals: dict[bytes, Principal] = {}
        for token, principal in grants:
            if len(token) < 16:
                raise InvalidInput("token", "must be at least 16 characters")
            self._principals[_digest(token)] = principal
        if not self._principals:
            raise InvalidInput("tokens", "at least one access token is needed")
        self._sessions: dict[bytes, Session] = {}

    @classmethod
    def parse(cls, text: str) -> TokenStore:
        """Tokens from lines `admin TOKEN [NAME]` or `tenant:TENANT TOKEN [NAME]`;
        `#` starts a comment."""
        grants = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) not in (2, 3):
                raise InvalidInput("tokens", f"line {number}: expected 'SCOPE TOKEN [NAME]'")
            scope, token = parts[0], parts[1]
            if scope == "admin":
                tenant = None
            elif scope.startswith("tenant:"):
                tenant = check.check_name("tenant_id", scope.removeprefix("tenant:"))
            else:
                raise InvalidInput("tokens", f"line {number}: scope must be admin or tenant:ID")
            name = parts[2] if len(parts) == 3 else scope
            grants.append((token, Principal(name=name, tenant_id=tenant)))
        return cls(grants)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TokenStore:
        """Tokens from a file in the `parse` format (InvalidInput("tokens") if it cannot
        be read)."""
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "is not UTF-8 text"
            raise InvalidInput("tokens", f"cannot read {os.fspath(path)!r}: {reason}") from None
        return cls.parse(text)

    def principal(self, token: str | None) -> Principal | None:
        """Whose token this is, or None."""
        if not token:
            return None
        digest = _digest(token)
        for known, principal in self._principals.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None

    def open_session(self, principal: Principal) -> str:
        """A new session for `principal`; return its id (the cookie's value)."""
        session_id = secrets.token_urlsafe(32)
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        self._sessions[_digest(session_id)] = Session(principal, secrets.token_urlsafe(32))
        return session_id

    def session(self, session_id: str | None) -> Session | None:
        """The session with this id, or None."""
        return self._sessions.get(_digest(session_id)) if session_id else None

    def close_session(self, session_id: str | None) -> None:
        """Forget the session (logout)."""
        if session_id:
            self._sessions.pop(_digest(session_id), None)


def csrf_matches(session: Session, offered: str | None) -> bool:
    """Whether a form carried the session's CSRF token."""
    return offered is not None and hmac.compare_digest(
        session.csrf_token.encode(), offered.encode()
    )
