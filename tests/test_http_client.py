"""connectors.http against a real local server that scripts its answers."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
import requests
import requests.auth
from flask import Flask, Response, request

from connectors.errors import (
    AuthExpiredError,
    ConfigurationError,
    PermanentError,
    RateLimitedError,
    RetriableError,
    UnsafeURLError,
)
from connectors.http import Action, HttpClient, Policy, check_url
from sandbox.server import serve

CANARY = "shpat_canary0123456789abcdef"


class Script:
    """Answers requests from a queue of (status, headers, body); records every request."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict, str]] = []
        self.seen: list[dict] = []
        self.lock = threading.Lock()

    def app(self) -> Flask:
        app = Flask("script")

        @app.route("/<path:path>", methods=["GET", "POST"])
        def any_path(path: str) -> Response:
            with self.lock:
                self.seen.append(
                    {"path": path, "headers": dict(request.headers), "time": time.monotonic()}
                )
                status, headers, body = self.answers.pop(0) if self.answers else (200, {}, "{}")
            if path == "slow":
                time.sleep(0.5)
            return Response(body, status=status, headers=headers, content_type="application/json")

        return app


@pytest.fixture
def server():
    script = Script()
    running = serve(script.app())
    yield script, running.url
    running.stop()


def client(**kwargs) -> tuple[HttpClient, list[float]]:
    slept: list[float] = []
    defaults = {"allow_loopback": True, "sleep": slept.append, "jitter": lambda lo, hi: hi}
    return HttpClient(Policy("test", **kwargs.pop("policy", {})), **{**defaults, **kwargs}), slept


def test_5xx_is_retried_with_exponential_backoff_then_succeeds(server):
    script, url = server
    script.answers = [(503, {}, "{}"), (502, {}, "{}"), (200, {}, '{"ok": true}')]
    http, slept = client(backoff_base=0.5)
    assert http.request("GET", f"{url}/x").json() == {"ok": True}
    assert len(script.seen) == 3
    assert slept == [0.5, 1.0]  # full jitter's ceiling each time (jitter pinned to the ceiling)


def test_attempts_are_bounded_and_end_in_a_retriable_error(server):
    script, url = server
    script.answers = [(500, {}, "{}")] * 10
    http, _ = client(max_attempts=3)
    with pytest.raises(RetriableError, match="3 attempts"):
        http.request("GET", f"{url}/x")
    assert len(script.seen) == 3


def test_retry_after_is_honoured_exactly(server):
    script, url = server
    script.answers = [(429, {"Retry-After": "7"}, "{}"), (200, {}, "{}")]
    http, slept = client()
    http.request("GET", f"{url}/x")
    assert slept == [7.0]
    assert http.stats["rate_limited"] == 1


def test_a_long_retry_after_is_handed_to_the_job_not_slept(server):
    script, url = server
    script.answers = [(429, {"Retry-After": "3600"}, '{"policyName": "DAILY"}')]
    http, slept = client(max_inline_wait=30)
    with pytest.raises(RateLimitedError) as caught:
        http.request("GET", f"{url}/x")
    assert caught.value.retry_after == pytest.approx(3600)
    assert caught.value.policy == "DAILY"
    assert slept == [] and len(script.seen) == 1


class CountingAuth(requests.auth.AuthBase):
    """Stamps each prepared attempt with its own number, as a per-request signature would."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        self.calls += 1
        prepared.headers["X-Attempt-Signature"] = f"sig-{self.calls}"
        return prepared


def test_auth_signs_every_attempt_afresh(server):
    script, url = server
    script.answers = [(503, {}, "{}"), (200, {}, "{}")]
    http, _ = client()
    auth = CountingAuth()
    http.request("GET", f"{url}/x", auth=auth)
    assert [s["headers"].get("X-Attempt-Signature") for s in script.seen] == ["sig-1", "sig-2"]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthExpiredError),
        (403, ConfigurationError),
        (400, PermanentError),
        (404, PermanentError),
    ],
)
def test_client_errors_are_not_retried(server, status, error):
    script, url = server
    script.answers = [(status, {}, '{"message": "nope", "category": "VALIDATION_ERROR"}')]
    http, _ = client()
    with pytest.raises(error):
        http.request("POST", f"{url}/x", json={})
    assert len(script.seen) == 1


def test_permanent_error_keeps_the_platform_details(server):
    script, url = server
    script.answers = [
        (400, {}, '{"message": "Property values were not valid", "category": "VALIDATION_ERROR"}')
    ]
    http, _ = client()
    with pytest.raises(PermanentError) as caught:
        http.request("POST", f"{url}/x", json={})
    assert caught.value.details["category"] == "VALIDATION_ERROR"
    assert caught.value.status == 400


def test_redirects_are_never_followed(server):
    script, url = server
    script.answers = [(302, {"Location": f"{url}/elsewhere"}, "")]
    http, _ = client()
    with pytest.raises(PermanentError):
        http.request("GET", f"{url}/x")
    assert [s["path"] for s in script.seen] == ["x"]


def test_a_body_level_verdict_can_rate_limit_a_200(server):
    script, url = server
    throttled = json.dumps({"errors": [{"extensions": {"code": "THROTTLED"}}]})
    script.answers = [(200, {}, throttled), (200, {}, '{"data": {}}')]

    def classify(response):
        return Action.RATE_LIMITED if "THROTTLED" in response.text else None

    http, slept = client(policy={"classify": classify, "retry_after": lambda r: 2.5})
    assert http.request("POST", f"{url}/graphql", json={}).json() == {"data": {}}
    assert slept == [2.5]


def test_timeouts_are_retried(server):
    script, url = server
    http, slept = client(timeout=(1.0, 0.1), max_attempts=2)
    with pytest.raises(RetriableError):
        http.request("GET", f"{url}/slow")
    assert len(script.seen) == 2 and len(slept) == 1


class Budget:
    def __init__(self, waits):
        self.waits = list(waits)
        self.observed = 0
        self.blocked: list[float] = []

    def reserve(self, cost=1.0):
        return self.waits.pop(0) if self.waits else 0.0

    def observe(self, response):
        self.observed += 1

    def block_for(self, seconds):
        self.blocked.append(seconds)


def test_budget_waits_before_sending_and_long_waits_reschedule(server):
    script, url = server
    budget = Budget([2.0])
    http, slept = client(budget=budget)
    http.request("GET", f"{url}/x")
    assert slept == [2.0] and budget.observed == 1
    budget.waits = [500.0]
    with pytest.raises(RateLimitedError):
        http.request("GET", f"{url}/x")
    assert len(script.seen) == 1  # nothing was sent for the over-budget call


def test_a_429_holds_back_every_caller_through_the_budget(server):
    script, url = server
    script.answers = [(429, {"Retry-After": "4"}, "{}"), (200, {}, "{}")]
    budget = Budget([])
    http, _ = client(budget=budget)
    http.request("GET", f"{url}/x")
    assert budget.blocked == [4.0]


def test_tokens_never_reach_logs_or_exceptions(server, caplog):
    script, url = server
    script.answers = [(400, {}, json.dumps({"message": f"bad token {CANARY}"}))] + [
        (503, {}, CANARY)
    ] * 5
    http, _ = client()
    http.add_secret(CANARY)
    with caplog.at_level(logging.DEBUG, logger="tandem"):
        with pytest.raises(PermanentError) as first:
            http.request("GET", f"{url}/x", params={"access_token": CANARY})
        with pytest.raises(RetriableError) as second:
            http.request("GET", f"{url}/x", headers={"X-Shopify-Access-Token": CANARY})
    assert CANARY not in caplog.text
    assert CANARY not in str(first.value) and CANARY not in str(second.value)
    assert script.seen[-1]["headers"]["X-Shopify-Access-Token"] == CANARY  # it was still sent


STUB_DNS = {
    "public.example": ["93.184.215.14"],
    "private.example": ["10.0.0.5"],
    "mixed.example": ["93.184.215.14", "192.168.1.1"],
    "metadata.example": ["169.254.169.254"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "localhost": ["127.0.0.1"],
}


@pytest.mark.parametrize(
    "url",
    [
        "https://private.example/x",
        "https://mixed.example/x",
        "https://metadata.example/latest/meta-data",
        "https://169.254.169.254/",
        "https://[::1]/",
        "https://mapped.example/",
        "https://2130706433/",  # 127.0.0.1 as a decimal literal resolves to loopback
        "https://user:pw@public.example/",
        "ftp://public.example/",
        "http://public.example/",  # plain http off-box
        "https://100.64.0.1/",
    ],
)
def test_ssrf_guard_refuses(url):
    dns = {**STUB_DNS, "2130706433": ["127.0.0.1"]}
    with pytest.raises(UnsafeURLError):
        check_url(url, allow_loopback=False, resolver=lambda host: dns[host])


def test_ssrf_guard_allows_public_https_and_sandbox_loopback_only_when_configured():
    check_url("https://public.example/x", allow_loopback=False, resolver=STUB_DNS.__getitem__)
    check_url("http://127.0.0.1:8101/x", allow_loopback=True, resolver=STUB_DNS.__getitem__)
    with pytest.raises(UnsafeURLError):
        check_url("http://127.0.0.1:8101/x", allow_loopback=False, resolver=STUB_DNS.__getitem__)


def test_allowed_hosts_patterns():
    resolve = lambda host: ["93.184.215.14"]  # noqa: E731
    check_url(
        "https://acme.myshopify.com/",
        allow_loopback=False,
        allowed_hosts=["*.myshopify.com"],
        resolver=resolve,
    )
    for bad in ("https://myshopify.com/", "https://acme.myshopify.com.evil.example/"):
        with pytest.raises(UnsafeURLError):
            check_url(
                bad, allow_loopback=False, allowed_hosts=["*.myshopify.com"], resolver=resolve
            )


def test_a_non_idempotent_request_is_not_sent_twice_after_a_5xx(server):
    script, url = server
    script.answers = [(503, {}, "{}"), (200, {}, "{}")]
    http, slept = client()
    with pytest.raises(RetriableError, match="may have been applied"):
        http.request("POST", f"{url}/create", json={}, idempotent=False)
    assert len(script.seen) == 1 and slept == []  # the job retries, after looking first
    # A throttle answer means the platform did nothing: that one is waited out and resent.
    script.answers = [(429, {"Retry-After": "0.1"}, "{}"), (200, {}, '{"ok": true}')]
    assert http.request("POST", f"{url}/create", json={}, idempotent=False).json() == {"ok": True}
    assert len(script.seen) == 3


def test_zoho_and_salesforce_token_shapes_are_masked_by_pattern():
    from connectors.redaction import redact

    assert "1000.abc.def" not in redact("Authorization: Zoho-oauthtoken 1000.abc.def")
    assert "AQ4x" not in redact("Authorization: Bearer 00D5g000004!AQ4xYz.q")
    assert "AQ4x" not in redact("sent bearer 00D5g000004!AQ4xYz.q to the instance")


def test_only_recent_access_tokens_are_kept_for_masking():
    from connectors.redaction import TRANSIENT_KEPT

    http, _ = client()
    for n in range(TRANSIENT_KEPT + 10):
        http.add_token(f"token-{n:04d}")
    http.add_token("token-0010")  # a token used again is not stored twice
    assert http._redact("token-0000 token-0010 token-0073") == "token-0000 *** ***"


def test_a_value_too_short_to_be_a_credential_is_not_masked_everywhere():
    from connectors import redaction

    redaction.register("s")
    http, _ = client()
    http.add_secret("r")
    assert http._redact("secrets are registered") == "secrets are registered"
