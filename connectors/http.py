"""The one HTTP client of Tandem: every connector's calls go through :class:`HttpClient`.

What it does on every call: an SSRF check of the URL, a reservation in the account's rate
budget, a timeout, and a verdict from the error table (status or exception -> action), which a
platform's :class:`Policy` extends. Retries use exponential backoff with full jitter
(tenacity); a platform's "not before" (Retry-After, throttle status) is never undercut; waits
longer than the worker should block for become :class:`RateLimitedError` so the job is
rescheduled instead. Tokens are registered secrets: no log line or exception carries them.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import requests.auth
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base

from connectors import redaction
from connectors.errors import (
    AuthExpiredError,
    ConfigurationError,
    ConnectorError,
    PermanentError,
    RateLimitedError,
    RetriableError,
    UnsafeURLError,
)

log = logging.getLogger("tandem.http")


class Action(enum.Enum):
    SUCCESS = "success"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    REFRESH_AUTH = "refresh_auth"
    FAIL = "fail"
    IGNORE = "ignore"
    CONFIG = "config"


DEFAULT_STATUS_ACTIONS: Mapping[int, Action] = {
    401: Action.REFRESH_AUTH,
    403: Action.CONFIG,  # missing scope or app not installed: an operator must act
    404: Action.FAIL,
    408: Action.RETRY,
    409: Action.FAIL,
    423: Action.RETRY,
    425: Action.RETRY,
    429: Action.RATE_LIMITED,
    500: Action.RETRY,
    502: Action.RETRY,
    503: Action.RETRY,
    504: Action.RETRY,
    # Cloudflare edge errors in front of several platforms (HubSpot lists 521-526).
    **{status: Action.RETRY for status in range(520, 527)},
}

DEFAULT_EXCEPTION_ACTIONS: Mapping[type[Exception], Action] = {
    requests.exceptions.InvalidURL: Action.CONFIG,
    requests.exceptions.MissingSchema: Action.CONFIG,
    requests.exceptions.InvalidSchema: Action.CONFIG,
    requests.exceptions.SSLError: Action.CONFIG,
    requests.exceptions.ConnectionError: Action.RETRY,
    requests.exceptions.Timeout: Action.RETRY,
    requests.exceptions.ChunkedEncodingError: Action.RETRY,
}


@dataclass(frozen=True)
class Policy:
    """How one platform extends the error table and reads its throttle signals."""

    platform: str
    statuses: Mapping[int, Action] = field(default_factory=dict)
    classify: Callable[[requests.Response], Action | None] | None = None
    retry_after: Callable[[requests.Response], float | None] | None = None
    observe: Callable[[requests.Response], None] | None = None
    error_message: Callable[[requests.Response], str] | None = None


class RateBudget(Protocol):
    def reserve(self, cost: float = 1.0) -> float:
        """Spend ``cost``; return the seconds to wait before sending (0 = now)."""

    def observe(self, response: requests.Response) -> None:
        """Take the platform's own remaining/reset signals into account."""

    def block_for(self, seconds: float) -> None:
        """Hold back every caller of this account (the platform said "not before")."""


def retry_after_header(response: requests.Response) -> float | None:
    """Retry-After in seconds or as an HTTP-date (RFC 9110 section 10.2.3); None if absent."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------- SSRF guard
Resolver = Callable[[str], list[str]]


def _resolve(host: str) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})


def _host_allowed(host: str, allowed_hosts: Collection[str]) -> bool:
    for pattern in allowed_hosts:
        pattern = pattern.lower()
        if pattern.startswith("*.") and host.endswith(pattern[1:]) and host != pattern[2:]:
            return True
        if host == pattern:
            return True
    return False


def check_url(
    url: str,
    *,
    allow_loopback: bool,
    allowed_hosts: Collection[str] | None = None,
    resolver: Resolver = _resolve,
) -> None:
    """Refuse URLs that could reach what a merchant-supplied host must never reach.

    Hosts come from merchants and OAuth responses (a shop domain, a Salesforce instance URL,
    a bulk-export download URL), so every call is checked: http(s) only, no userinfo, plain
    http only to loopback in the sandbox, an optional allow-list, and every resolved address
    public (OWASP SSRF prevention cheat sheet,
    https://cheatsheetseries.owasp.org/cheatsheets/Server_Side_Request_Forgery_Prevention_Cheat_Sheet.html).

    Raises UnsafeURLError.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURLError(f"refusing {parts.scheme or 'scheme-less'} URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURLError("refusing a URL with credentials in it")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise UnsafeURLError("refusing a URL without a host")
    if allowed_hosts is not None and not _host_allowed(host, allowed_hosts):
        raise UnsafeURLError(f"host {host} is not one this platform uses")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolver(host)]
        except (OSError, ValueError) as exc:
            raise RetriableError(f"cannot resolve {host}: {exc}") from None
    if not addresses:
        raise UnsafeURLError(f"{host} resolves to nothing")
    for address in addresses:
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        if address.is_loopback:
            if not allow_loopback:
                raise UnsafeURLError(f"{host} is a loopback address")
            continue
        if (
            address.is_private
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
            or (address.version == 4 and address in ipaddress.ip_network("100.64.0.0/10"))
        ):
            raise UnsafeURLError(f"{host} resolves to a non-public address")
    if parts.scheme == "http" and not all(a.is_loopback for a in addresses):
        raise UnsafeURLError("plain http is only allowed to the local sandbox; use https")


# ---------------------------------------------------------------------------- the client
class _Verdict(Exception):
    """One attempt's outcome that may be retried (carried through tenacity)."""

    def __init__(self, action: Action, error: ConnectorError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.action = action
        self.error = error
        self.wait = wait


class _Wait(wait_base):
    """Full-jitter exponential backoff, except where the platform named the wait."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, _Verdict) and exc.wait is not None:
            return exc.wait
        ceiling = min(
            self.client.backoff_max,
            self.client.backoff_base * 2 ** (retry_state.attempt_number - 1),
        )
        return self.client.jitter(0, ceiling)


class HttpClient:
    """One platform account's HTTP client (one per connector instance)."""

    def __init__(
        self,
        policy: Policy,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_inline_wait: float = 30.0,
        budget: RateBudget | None = None,
        allow_loopback: bool = False,
        allowed_hosts: Collection[str] | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        resolver: Resolver = _resolve,
        jitter: Callable[[float, float], float] | None = None,
    ) -> None:
        import random

        self.policy = policy
        self.statuses = {**DEFAULT_STATUS_ACTIONS, **policy.statuses}
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_inline_wait = max_inline_wait
        self.budget = budget
        self.allow_loopback = allow_loopback
        self.allowed_hosts = allowed_hosts
        self.session = session or requests.Session()
        self.sleep = sleep
        self.resolver = resolver
        self.jitter = jitter or random.uniform
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "rate_limited": 0}
        self._secrets: set[str] = set()
        self._tokens: deque[str] = deque(maxlen=redaction.TRANSIENT_KEPT)

    def add_secret(self, value: str) -> None:
        """Never let ``value`` appear in a log line or an exception message."""
        if value and value not in self._secrets:
            self._secrets.add(value)
            redaction.register(value)

    def add_token(self, value: str) -> None:
        """Like :meth:`add_secret`, for an access token: call it with every token used (one
        another worker minted too); only the recent ones are kept."""
        if value and value not in self._tokens:
            self._tokens.append(value)
            redaction.register(value, transient=True)

    def _redact(self, text: str) -> str:
        return redaction.redact(text, (*self._secrets, *self._tokens))

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        cost: float = 1.0,
        stream: bool = False,
        ok: Collection[int] = (),
        auth: requests.auth.AuthBase | None = None,
        idempotent: bool = True,
    ) -> requests.Response:
        """Send one request, retrying what the table says to retry. ``auth`` signs each
        attempt afresh (a retried OAuth 1.0a request needs a new nonce and timestamp).

        ``idempotent=False`` marks a request that would do its work twice if sent twice (a
        plain create): a timeout or 5xx may come after the platform applied it, so it is not
        sent again here; the caller's job retries from the top, where it first looks at what
        exists. A throttle answer (the platform did nothing) is still waited out and retried.

        Raises RetriableError (attempts exhausted, or a non-idempotent request that may have
        been applied), RateLimitedError (a wait too long to block for), AuthExpiredError,
        PermanentError (with the platform's details), ConfigurationError / UnsafeURLError.
        """
        check_url(
            url,
            allow_loopback=self.allow_loopback,
            allowed_hosts=self.allowed_hosts,
            resolver=self.resolver,
        )

        def attempt() -> requests.Response:
            return self._attempt(method, url, params, json, data, headers, cost, stream, ok, auth)

        retrying = Retrying(
            retry=retry_if_exception(
                lambda e: isinstance(e, _Verdict) and self._may_wait(e, idempotent)
            ),
            stop=stop_after_attempt(self.max_attempts),
            wait=_Wait(self),
            sleep=self._sleep_between,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Verdict as verdict:
            if (
                verdict.action == Action.RATE_LIMITED
                and verdict.wait is not None
                and verdict.wait > self.max_inline_wait
            ):
                raise verdict.error from None
            if verdict.action == Action.RETRY and not idempotent:
                raise RetriableError(
                    f"not sent again, it may have been applied: {verdict.error}",
                    platform=self.policy.platform,
                    status=verdict.error.status,
                ) from None
            if verdict.action in (Action.RETRY, Action.RATE_LIMITED):
                raise RetriableError(
                    f"gave up after {self.max_attempts} attempts: {verdict.error}",
                    platform=self.policy.platform,
                    status=verdict.error.status,
                ) from None
            raise verdict.error from None

    def _may_wait(self, verdict: _Verdict, idempotent: bool = True) -> bool:
        if verdict.action == Action.RETRY:
            return idempotent
        return verdict.action == Action.RATE_LIMITED and (
            verdict.wait is None or verdict.wait <= self.max_inline_wait
        )

    def _sleep_between(self, seconds: float) -> None:
        self.stats["retries"] += 1
        self.sleep(seconds)

    def _attempt(
        self, method, url, params, json, data, headers, cost, stream, ok, auth=None
    ) -> requests.Response:
        if self.budget is not None:
            wait = self.budget.reserve(cost)
            if wait > self.max_inline_wait:
                raise RateLimitedError(
                    f"{self.policy.platform} budget is spent for {wait:.0f}s",
                    platform=self.policy.platform,
                    retry_after=wait,
                )
            if wait > 0:
                self.sleep(wait)
        started = time.monotonic()
        self.stats["requests"] += 1
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=headers,
                timeout=self.timeout,
                stream=stream,
                allow_redirects=False,
                auth=auth,
            )
        except requests.RequestException as exc:
            action = next(
                (a for kind, a in DEFAULT_EXCEPTION_ACTIONS.items() if isinstance(exc, kind)),
                Action.RETRY,
            )
            message = self._redact(f"{method} {url}: {type(exc).__name__}: {exc}")
            log.warning("%s", message)
            if action == Action.CONFIG:
                raise ConfigurationError(message, platform=self.policy.platform) from None
            raise _Verdict(action, RetriableError(message, platform=self.policy.platform)) from None
        elapsed = (time.monotonic() - started) * 1000
        status_key = f"status_{response.status_code}"
        self.stats[status_key] = self.stats.get(status_key, 0) + 1
        log.debug(
            "%s", self._redact(f"{method} {url} -> {response.status_code} in {elapsed:.0f} ms")
        )
        if self.policy.observe:
            self.policy.observe(response)
        if self.budget is not None:
            self.budget.observe(response)
        return self._judge(method, url, response, ok)

    def _judge(
        self, method: str, url: str, response: requests.Response, ok: Collection[int]
    ) -> requests.Response:
        status = response.status_code
        action = self.policy.classify(response) if self.policy.classify else None
        if action is None:
            if status in ok or 200 <= status < 300:
                action = Action.SUCCESS
            elif 300 <= status < 400:
                action = Action.FAIL  # redirects are never followed: they could lead anywhere
            else:
                action = self.statuses.get(status, Action.RETRY if status >= 500 else Action.FAIL)
        if action in (Action.SUCCESS, Action.IGNORE):
            return response
        message = self._redact(
            f"{self.policy.platform} {method} {urlsplit(url).path} -> {status}: {self._message(response)}"
        )
        platform = self.policy.platform
        if action == Action.RATE_LIMITED:
            self.stats["rate_limited"] += 1
            wait = (self.policy.retry_after or retry_after_header)(response)
            policy_name = None
            try:
                body = response.json()
                policy_name = body.get("policyName") if isinstance(body, dict) else None
            except ValueError:
                pass
            log.info("%s", message)
            if wait and self.budget is not None:
                self.budget.block_for(wait)
            raise _Verdict(
                action,
                RateLimitedError(
                    message, platform=platform, status=status, retry_after=wait, policy=policy_name
                ),
                wait,
            )
        if action == Action.RETRY:
            log.warning("%s", message)
            raise _Verdict(
                action,
                RetriableError(message, platform=platform, status=status),
                retry_after_header(response),
            )
        if action == Action.REFRESH_AUTH:
            raise AuthExpiredError(message, platform=platform, status=status)
        if action == Action.CONFIG:
            raise ConfigurationError(message, platform=platform, status=status)
        raise PermanentError(
            message, platform=platform, status=status, details=self._details(response)
        )

    def _message(self, response: requests.Response) -> str:
        if self.policy.error_message:
            try:
                return self.policy.error_message(response)
            except Exception:  # a malformed error body must not hide the error itself
                log.debug("error_message hook failed", exc_info=True)
        return (response.text or "")[:300]

    def _details(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return {"body": self._redact((response.text or "")[:2000])}
