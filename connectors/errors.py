"""Every error a connector raises, grouped by what the caller should do about it.

The sync engine never inspects HTTP statuses or platform error codes: it catches one of
these classes and acts (retry later, wait for the rate limit, refresh credentials, dead-letter
the record, or stop the connection and tell the operator).
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class. ``platform`` names the platform that answered (or would have)."""

    def __init__(self, message: str, *, platform: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.platform = platform
        self.status = status


class RetriableError(ConnectorError):
    """Transient: connection reset, timeout, 5xx. Try the same call again later."""


class RateLimitedError(RetriableError):
    """The platform asked us to slow down. ``retry_after`` is seconds to wait, if known."""

    def __init__(
        self,
        message: str,
        *,
        platform: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        policy: str | None = None,
    ) -> None:
        super().__init__(message, platform=platform, status=status)
        self.retry_after = retry_after
        self.policy = policy


class AuthExpiredError(ConnectorError):
    """Credentials were refused (401). Refresh them once; if that fails, stop the connection."""


class PermanentError(ConnectorError):
    """The platform rejected this request for good (validation, 4xx). Retrying cannot help.

    ``details`` carries the platform's own reason, kept verbatim for the dead letter.
    """

    def __init__(
        self,
        message: str,
        *,
        platform: str = "",
        status: int | None = None,
        details: object = None,
    ) -> None:
        super().__init__(message, platform=platform, status=status)
        self.details = details


class ConfigurationError(ConnectorError):
    """Tandem is set up wrongly for this platform (bad URL, missing scope, forbidden host).

    Retrying cannot help; an operator has to change something.
    """


class UnsafeURLError(ConfigurationError):
    """The SSRF guard refused a URL (private address, wrong scheme, host not allowed)."""
