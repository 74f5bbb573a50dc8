"""Secrets never reach a log line or an exception message (CWE-532).

Two layers: values we know (every token a client is given is registered) are replaced
wherever they appear, and token-shaped text we were never told about (bearer tokens,
platform token prefixes, secret query parameters) is masked by pattern.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Iterable

MASK = "***"

# Every real credential is far longer (tokens, keys and secrets are 20 characters and more);
# a value shorter than this is not masked, since masking "s" would garble every log line.
MIN_SECRET_LENGTH = 8

# Short-lived secrets (access tokens) a process keeps masking: a token is useless an hour or
# two after it was minted, so the oldest ones may be forgotten and the list stays small.
TRANSIENT_KEPT = 64

_PATTERNS = [
    # Authorization / token headers as they appear in reprs of requests or responses.
    re.compile(
        r"(?i)((?:authorization|x-shopify-access-token|x-auth-token|x-hubspot-[a-z-]*token)['\"]?\s*[:=]\s*['\"]?(?:(?:bearer|zoho-oauthtoken)\s+)?)[^\s'\",}]+"
    ),
    # Salesforce session ids carry "!" ("00D...!AQ4..."); Zoho's scheme is Zoho-oauthtoken.
    re.compile(r"(?i)((?:bearer|zoho-oauthtoken)\s+)[A-Za-z0-9._~+/=!-]+"),
    # Secret query-string or form parameters.
    re.compile(
        r"(?i)((?:access_token|refresh_token|client_secret|code|hmac|signature|password)=)[^&\s'\"]+"
    ),
    # Platform token shapes: HubSpot private-app tokens, Shopify admin tokens.
    re.compile(r"()\bpat-[a-z]{2}\d?-[0-9a-f-]{8,}"),
    re.compile(r"()\bshp(?:at|ca|pa|ss)_[0-9A-Za-z]{8,}"),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and every token-shaped value masked."""
    for secret in sorted(
        (s for s in secrets if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True
    ):
        text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}{MASK}", text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites every record that passes a handler so registered secrets never get out."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._transient: deque[str] = deque(maxlen=TRANSIENT_KEPT)
        self._lock = threading.Lock()

    def register(self, value: str, *, transient: bool = False) -> None:
        if value and len(value) >= MIN_SECRET_LENGTH:
            with self._lock:
                if transient:
                    if value not in self._transient:
                        self._transient.append(value)
                else:
                    self._secrets.add(value)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = (*self._secrets, *self._transient)
        message = record.getMessage()
        cleaned = redact(message, secrets)
        if record.exc_info and record.exc_info[1] is not None:
            # Formatted tracebacks carry exception text; render them now, redacted.
            import traceback

            cleaned += "\n" + redact("".join(traceback.format_exception(*record.exc_info)), secrets)
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = cleaned, ()
        return True


FILTER = RedactingFilter()


def install(logger: logging.Logger | None = None) -> None:
    """Attach the filter to the handlers of the root logger (where tandem.* records end up)
    and to ``logger`` itself, once."""
    targets = [logger or logging.getLogger("tandem"), *logging.getLogger().handlers]
    for target in targets:
        if FILTER not in target.filters:
            target.addFilter(FILTER)


def register(value: str, *, transient: bool = False) -> None:
    """Never log ``value`` (``transient``: an access token, masked while it is recent)."""
    FILTER.register(value, transient=transient)
    install()
