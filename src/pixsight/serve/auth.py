"""Who may call what: API keys, UI sessions with CSRF tokens, per-key rate limits.

Routes declare the lowest role they accept; the dependency returns the caller:

>>> from fastapi import APIRouter, Depends
>>> router = APIRouter()
>>> @router.get("/v1/whoami")
... def whoami(principal: Principal = Depends(require("viewer"))) -> dict:
...     return {"role": principal.role}

Clients send ``Authorization: Bearer pxs_...``. Browsers log in once (the UI's ``/login``
calls :func:`login`), then carry the ``pixsight_session`` cookie; a cookie-authenticated
request that changes state must also send ``X-CSRF-Token`` equal to the session's token.
UI pages use :func:`require_page`, which redirects to ``/login`` instead of answering 401.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from fastapi import HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from .keys import ROLES, KeyInfo, KeyStore

__all__ = [
    "ROLES", "ApiError", "LoginRedirect", "Principal", "Session", "SessionStore", "RateLimiter",
    "require", "require_page", "optional_principal", "login", "logout", "csrf_token",
    "SESSION_COOKIE", "CSRF_HEADER", "role_at_least",
]

SESSION_COOKIE = "pixsight_session"
CSRF_HEADER = "X-CSRF-Token"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_RANK = {role: i for i, role in enumerate(ROLES)}


class ApiError(HTTPException):
    """An HTTP error with the body ``{"error": {"type": error_type, "message": message}}``.

    >>> ApiError(404, "NotFound", "no image abc").status_code
    404
    """

    def __init__(self, status_code: int, error_type: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.error_type = error_type
        self.message = message


class LoginRedirect(HTTPException):
    """Raised by :func:`require_page`: the app answers 303 to ``/login?next=<path>``."""

    def __init__(self, next_path: str = "/") -> None:
        super().__init__(status_code=303, detail="login required",
                         headers={"Location": "/login?next=" + quote(next_path, safe="/")})


def role_at_least(role: str, wanted: str) -> bool:
    """``viewer < reviewer < admin``.

    >>> role_at_least("admin", "reviewer"), role_at_least("viewer", "reviewer")
    (True, False)
    """
    return _RANK.get(role, -1) >= _RANK[wanted]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller; ``via`` is ``"bearer"`` or ``"session"``."""

    key_id: str
    name: str
    role: str
    via: str

    def can(self, role: str) -> bool:
        return role_at_least(self.role, role)


# -- sessions -------------------------------------------------------------------------------
@dataclass
class Session:
    id: str
    key_id: str
    csrf: str
    expires: float


class SessionStore:
    """Server-side UI sessions, in memory (a restart logs everyone out), bounded in size.

    >>> store = SessionStore(hours=1)
    >>> s = store.create("abcd1234")
    >>> store.get(s.id).key_id, store.get("nope")
    ('abcd1234', None)
    """

    def __init__(self, *, hours: float = 12.0, max_sessions: int = 10_000) -> None:
        self.ttl_s = hours * 3600.0
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, key_id: str) -> Session:
        session = Session(id=secrets.token_urlsafe(32), key_id=key_id, csrf=secrets.token_urlsafe(32),
                          expires=time.time() + self.ttl_s)
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)  # the oldest login goes first
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires < time.time():
                del self._sessions[session_id]
                return None
            return session

    def delete(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def drop_key(self, key_id: str) -> None:
        """End every session of a (revoked) key."""
        with self._lock:
            for sid in [s.id for s in self._sessions.values() if s.key_id == key_id]:
                del self._sessions[sid]

    def __len__(self) -> int:
        return len(self._sessions)


# -- rate limits ----------------------------------------------------------------------------
@dataclass
class _Bucket:
    tokens: float
    stamp: float = field(default_factory=time.monotonic)


class RateLimiter:
    """Token bucket per key: ``per_min`` requests a minute on average, bursts up to ``burst``.

    >>> limiter = RateLimiter(per_min=60, burst=2)
    >>> limiter.hit("k"), limiter.hit("k"), limiter.hit("k") > 0
    (0.0, 0.0, True)
    """

    def __init__(self, *, per_min: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = per_min / 60.0  # tokens per second
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; 0.0 when allowed, else the seconds to wait (nothing taken)."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(tokens=self.burst, stamp=now)
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
                bucket.stamp = now
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return 0.0
            return (cost - bucket.tokens) / self.rate


# -- authentication -------------------------------------------------------------------------
def _state(request: Request) -> Any:
    return request.app.state.px


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""  # present but malformed: a failed login, not an anonymous call
    return token.strip()


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "Unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def _authenticate(request: Request) -> tuple[Principal | None, str]:
    """The caller, or None with the reason; CSRF is checked for cookie sessions."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached, ""
    px = _state(request)
    keys: KeyStore = px.keys
    token = _bearer(request)
    if token is not None:
        info: KeyInfo | None = await run_in_threadpool(keys.verify, token) if token else None
        if info is None:
            return None, "invalid or revoked API key"
        principal = Principal(info.id, info.name, info.role, "bearer")
    else:
        session = px.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None, "missing API key: send 'Authorization: Bearer <key>' (pixsight keys create)"
        info = await run_in_threadpool(keys.get, session.key_id)
        if info is None or info.revoked is not None:
            px.sessions.delete(session.id)
            return None, "the session's key was revoked; log in again"
        if request.method in _UNSAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not secrets.compare_digest(sent.encode(), session.csrf.encode()):
                raise ApiError(403, "CsrfError", f"missing or wrong {CSRF_HEADER} header for a session request")
        principal = Principal(info.id, info.name, info.role, "session")
    request.state.principal = principal
    return principal, ""


#: What a browser session's GET costs: one page fans out into dozens of thumbnails and JSON
#: reads, so it is charged a fifth of a request (a UI user is not a scraper).
SESSION_READ_COST = 0.2


def _cost(request: Request, principal: Principal) -> float:
    return SESSION_READ_COST if principal.via == "session" and request.method in ("GET", "HEAD") else 1.0


def _rate_limit(request: Request, bucket: str, cost: float = 1.0) -> None:
    px = _state(request)
    wait = px.limiter.hit(bucket, cost)
    if wait > 0:
        metrics = getattr(px, "metrics", None)
        if metrics is not None:
            metrics.count_rejection("rate_limited")
        raise ApiError(429, "RateLimited", "too many requests for this key; slow down",
                       headers={"Retry-After": str(max(1, int(wait + 0.999)))})


def require(role: str) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency: the caller if its key has at least ``role`` (401 / 403 / 429 else)."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")

    async def dependency(request: Request) -> Principal:
        principal, reason = await _authenticate(request)
        if principal is None:
            client = request.client.host if request.client else "?"
            _rate_limit(request, f"anon:{client}")  # bounds key guessing per client address
            raise _unauthorized(reason)
        if not getattr(request.state, "rate_limited", False):
            request.state.rate_limited = True  # one charge per request, however many dependencies
            _rate_limit(request, f"key:{principal.key_id}", _cost(request, principal))
        if not principal.can(role):
            raise ApiError(403, "Forbidden", f"this needs role {role}; key {principal.key_id!r} has {principal.role}")
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


def require_page(role: str = "viewer") -> Callable[[Request], Awaitable[Principal]]:
    """Like :func:`require` for HTML pages: no or bad credentials → 303 to ``/login``."""
    check = require(role)

    async def dependency(request: Request) -> Principal:
        try:
            return await check(request)
        except ApiError as err:
            if err.status_code == 401:
                path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                raise LoginRedirect(path) from None
            raise

    dependency.__name__ = f"require_page_{role}"
    return dependency


async def optional_principal(request: Request) -> Principal | None:
    """The caller if authenticated (no error, no rate limit), else None."""
    try:
        principal, _ = await _authenticate(request)
    except ApiError:
        return None
    return principal


def csrf_token(request: Request) -> str:
    """The CSRF token of the request's session ('' without one), for ``<meta name="csrf-token">``."""
    session = _state(request).sessions.get(request.cookies.get(SESSION_COOKIE))
    return session.csrf if session else ""


async def login(request: Request, response: Response, token: str) -> Session | None:
    """Check ``token``; on success start a session and set its cookie on ``response``.

    Failed attempts are rate limited per client address (429 :class:`ApiError`).
    """
    px = _state(request)
    info = await run_in_threadpool(px.keys.verify, token.strip()) if token else None
    if info is None:
        client = request.client.host if request.client else "?"
        _rate_limit(request, f"anon:{client}")
        return None
    px.sessions.delete(request.cookies.get(SESSION_COOKIE))
    session = px.sessions.create(info.id)
    response.set_cookie(SESSION_COOKIE, session.id, max_age=int(px.sessions.ttl_s), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return session


def logout(request: Request, response: Response) -> None:
    """End the request's session and clear its cookie."""
    _state(request).sessions.delete(request.cookies.get(SESSION_COOKIE))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
