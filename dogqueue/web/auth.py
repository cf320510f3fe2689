"""Who may see what: access tokens, browser sessions and CSRF tokens.

An admin token sees every tenant; a tenant token sees only its tenant. Tokens are kept
as SHA-256 digests and never appear in URLs or logs: a browser trades one for a session
cookie (HttpOnly, SameSite=Strict) at the login form, or trades a one-time login code
(from `dogqueue web`'s start line, carried in the URL's fragment, which no server log
sees); a program sends `Authorization: Bearer TOKEN`. Sessions end after an idle time
and a lifetime, and each principal keeps its own few: logging in again and again drops
only that principal's oldest sessions, never another's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from dogqueue.clock import Clock, utc_now
from dogqueue.core import validation as check
from dogqueue.core.errors import InvalidInput

#: Sessions one principal keeps at most; its least recently used is dropped first.
MAX_SESSIONS_PER_PRINCIPAL = 32
#: Login codes outstanding at most; the oldest is dropped first.
MAX_LOGIN_CODES = 8
#: A session unused this long ends, unless the store is told otherwise.
DEFAULT_IDLE = timedelta(hours=1)
#: A session ends this long after login however much it is used, unless told otherwise.
DEFAULT_LIFETIME = timedelta(hours=12)
#: How long a login code may wait for its one use.
LOGIN_CODE_VALID = timedelta(minutes=10)


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
    """A logged-in browser: who it is, the token its forms must carry, and when it
    logged in."""

    principal: Principal
    csrf_token: str
    started: datetime


@dataclass
class _Kept:
    session: Session
    last_used: datetime


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenStore:
    """The valid access tokens, and the sessions made from them."""

    def __init__(
        self,
        grants: Iterable[tuple[str, Principal]],
        *,
        idle: timedelta = DEFAULT_IDLE,
        lifetime: timedelta = DEFAULT_LIFETIME,
        clock: Clock = utc_now,
    ) -> None:
        if not (isinstance(idle, timedelta) and idle > timedelta(0)):
            raise InvalidInput("idle", "must be a positive timedelta")
        if not (isinstance(lifetime, timedelta) and lifetime > timedelta(0)):
            raise InvalidInput("lifetime", "must be a positive timedelta")
        self.idle, self.lifetime, self._clock = idle, lifetime, clock
        self._principals: dict[bytes, Principal] = {}
        for token, principal in grants:
            if len(token) < 16:
                raise InvalidInput("token", "must be at least 16 characters")
            self._principals[_digest(token)] = principal
        if not self._principals:
            raise InvalidInput("tokens", "at least one access token is needed")
        # Each principal's sessions, least recently used first.
        self._sessions: dict[Principal, OrderedDict[bytes, _Kept]] = {}
        self._login_codes: OrderedDict[bytes, tuple[Principal, datetime]] = OrderedDict()

    @classmethod
    def parse(cls, text: str, **limits: object) -> TokenStore:
        """Tokens from lines `admin TOKEN [NAME]` or `tenant:TENANT TOKEN [NAME]`;
        `#` starts a comment. `limits` are the session limits (`idle`, `lifetime`)."""
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
        return cls(grants, **limits)  # type: ignore[arg-type]

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **limits: object) -> TokenStore:
        """Tokens from a file in the `parse` format (InvalidInput("tokens") if it cannot
        be read)."""
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "is not UTF-8 text"
            raise InvalidInput("tokens", f"cannot read {os.fspath(path)!r}: {reason}") from None
        return cls.parse(text, **limits)

    def principal(self, token: str | None) -> Principal | None:
        """Whose token this is, or None."""
        if not token:
            return None
        digest = _digest(token)
        for known, principal in self._principals.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None

    @property
    def first_admin(self) -> Principal | None:
        """The first admin among the tokens (whom a login link logs in), or None."""
        return next((p for p in self._principals.values() if p.tenant_id is None), None)

    def open_session(self, principal: Principal) -> str:
        """A new session for `principal`; return its id (the cookie's value). Past
        MAX_SESSIONS_PER_PRINCIPAL, that principal's least recently used one ends."""
        now = self._clock()
        session_id = secrets.token_urlsafe(32)
        kept = self._sessions.setdefault(principal, OrderedDict())
        for digest in [d for d, k in kept.items() if self._ended(k, now)]:
            del kept[digest]
        while len(kept) >= MAX_SESSIONS_PER_PRINCIPAL:
            kept.popitem(last=False)
        session = Session(principal, secrets.token_urlsafe(32), now)
        kept[_digest(session_id)] = _Kept(session, now)
        return session_id

    def session(self, session_id: str | None) -> Session | None:
        """The live session with this id (its idle time starts again), or None."""
        if not session_id:
            return None
        digest, now = _digest(session_id), self._clock()
        for kept in self._sessions.values():
            found = kept.get(digest)
            if found is None:
                continue
            if self._ended(found, now):
                del kept[digest]
                return None
            found.last_used = now
            kept.move_to_end(digest)
            return found.session
        return None

    def close_session(self, session_id: str | None) -> None:
        """Forget the session (logout)."""
        if session_id:
            for kept in self._sessions.values():
                kept.pop(_digest(session_id), None)

    def _ended(self, kept: _Kept, now: datetime) -> bool:
        return now - kept.last_used >= self.idle or now - kept.session.started >= self.lifetime

    def issue_login_code(self, principal: Principal) -> str:
        """A code that logs `principal` in once, within LOGIN_CODE_VALID."""
        code = secrets.token_urlsafe(24)
        while len(self._login_codes) >= MAX_LOGIN_CODES:
            self._login_codes.popitem(last=False)
        self._login_codes[_digest(code)] = (principal, self._clock() + LOGIN_CODE_VALID)
        return code

    def redeem_login_code(self, code: str | None) -> Principal | None:
        """Whom the code logs in, or None; a code works once."""
        if not code:
            return None
        found = self._login_codes.pop(_digest(code), None)
        if found is None or self._clock() >= found[1]:
            return None
        return found[0]


def csrf_matches(session: Session, offered: str | None) -> bool:
    """Whether a form carried the session's CSRF token."""
    return offered is not None and hmac.compare_digest(
        session.csrf_token.encode(), offered.encode()
    )
