"""The provider API client: one origin, credentials attached, retries, errors mapped.

Foreign exceptions (httpx) never leave this module: they become `recfetch.errors`
types here, the way httpx maps httpcore's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Generator, Mapping
from typing import Any
from urllib.parse import urljoin

import httpx

from recfetch import backoff
from recfetch.errors import (
    AuthError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RecfetchError,
    TransferError,
)
from recfetch.providers.limiter import ApiLimiter
from recfetch.tls import refused_certificate, shared_ssl_context
from recfetch.urls import is_loopback, origin_of, redact_url

log = logging.getLogger("recfetch.api")

ErrorMapper = Callable[[httpx.Response, Any], RecfetchError | None]
"""(response, parsed body or None) -> a specific error, or None for the generic mapping."""

USER_AGENT = "recfetch/0.1 (+https://github.com/recfetch/recfetch)"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def parse_json(response: httpx.Response) -> Any:
    """The body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


class HeaderAuth(httpx.Auth):
    """Credential headers from ``headers()``, added to every authenticated request."""

    def __init__(self, headers: Callable[[], Mapping[str, str]]) -> None:
        self._headers = headers

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self._headers())
        yield request


class ApiClient:
    """Talks to exactly one provider API origin; refuses to send credentials anywhere else.

    ``auth`` is an `httpx.Auth` applied to every authenticated request (a provider whose
    tokens expire renews them inside its auth flow). ``retry_after_floor`` is how long a
    429 without Retry-After waits at least.
    """

    def __init__(
        self,
        base_url: str,
        *,
        provider: str,
        auth: httpx.Auth | None = None,
        error_mapper: ErrorMapper | None = None,
        retries: int = 5,
        client: httpx.Client | None = None,
        stop: threading.Event | None = None,
        retry_after_floor: float | None = None,
        limiter: ApiLimiter | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.origin = origin_of(self.base_url)
        self.provider = provider
        self.auth = auth
        self.error_mapper = error_mapper
        self.retry_after_floor = retry_after_floor
        self.limiter = limiter or ApiLimiter()
        """Shared by every thread using this client: the provider's API lane (SPEC §3)."""
        self.retries = retries
        self.stop = stop
        self.before_request: Callable[[], None] | None = None
        """Called before each request is sent (it may take a while): `list` flushes the lines
        it has written there, so they reach the reader before the next page is asked for."""
        self._own_client = client is None
        self.http = client or httpx.Client(
            timeout=TIMEOUT,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            verify=shared_ssl_context(),  # one CA bundle load per process, not per client
            # HTTP(S)_PROXY applies to real API hosts; this machine (the sandbox) is never proxied.
            trust_env=not is_loopback(self.base_url),
        )

    def url(self, path: str) -> str:
        """Join ``path`` onto the base URL (leading slashes are relative to base)."""
        return urljoin(self.base_url, path.lstrip("/"))

    def close(self) -> None:
        if self._own_client:
            self.http.close()

    # ------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201, 202, 204),
        idempotent: bool | None = None,
        authenticated: bool = True,
        what: str = "request",
    ) -> httpx.Response:
        """Send one API request with retries; return the response whose status is in ``ok``.

        Any other status becomes a RecfetchError via the provider's error mapper.
        """
        if self.before_request is not None:
            self.before_request()
        url = self.url(path)
        if origin_of(url) != self.origin:  # credentials go only to the provider's API host
            raise ProviderError(
                f"refusing to send {self.provider} credentials to {redact_url(url)}",
                provider=self.provider,
            )
        if idempotent is None:
            idempotent = method.upper() in {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
        attempt = 0
        while True:
            attempt += 1
            log.debug("%s %s (attempt %d)", method, redact_url(url), attempt)
            try:
                # A login (unauthenticated) takes no slot: the thread renewing a token holds the
                # provider's token lock, and the threads holding slots may be waiting for that lock.
                lane = self.limiter.slot(self.stop) if authenticated else contextlib.nullcontext()
                with lane:
                    response = self.http.request(
                        method,
                        url,
                        params=_clean(params),
                        json=json_body,
                        data=data,
                        headers=dict(headers or {}),
                        auth=self.auth if authenticated else None,
                    )
            except httpx.TransportError as exc:
                where = f"{self.provider} at {redact_url(self.base_url)}"
                refused = refused_certificate(exc, where, provider=self.provider)
                if refused is not None:
                    raise refused from None
                if idempotent and attempt <= self.retries:
                    self._wait(attempt, None)
                    continue
                raise TransferError(
                    f"could not reach {self.provider} at {redact_url(self.base_url)}: {type(exc).__name__}",
                    hint="check base_url and your network, then try again",
                    provider=self.provider,
                ) from None
            log.debug("-> %d %s", response.status_code, redact_url(url))
            status = response.status_code
            wait = backoff.retry_after_seconds(response.headers.get("Retry-After"))
            if wait is None and status == 429:
                wait = self.retry_after_floor
            self.limiter.observe(status, response.headers, wait if status == 429 else None)
            if status in ok:
                return response
            if status == 429 or status >= 500:
                retry_ok = (idempotent or status in (429, 503)) and attempt <= self.retries
                if retry_ok and (wait is None or wait <= backoff.MAX_HONOURED_WAIT):
                    self._wait(attempt, wait)
                    continue
            raise self.error_for(response, what=what)

    def get_json(
        self, path: str, *, params: Mapping[str, Any] | None = None, what: str = "request", **kw: Any
    ) -> Any:
        """GET and parse JSON; a non-JSON 200 is a provider error, never a crash."""
        response = self.request("GET", path, params=params, what=what, **kw)
        return self.json_of(response, what=what)

    def json_of(self, response: httpx.Response, *, what: str = "request") -> Any:
        body = parse_json(response)
        if body is None and response.content.strip():
            raise ProviderError(
                f"{self.provider} sent a response that is not JSON for {what} "
                f"(HTTP {response.status_code}, {response.headers.get('content-type', '?')})",
                hint="check that base_url points at the provider's API",
                provider=self.provider,
                http_status=response.status_code,
            )
        return body

    # ------------------------------------------------------------------
    def _wait(self, attempt: int, retry_after: float | None) -> None:
        delay = backoff.delay_for(attempt, retry_after)
        log.debug("retrying %s in %.1fs", self.provider, delay)
        if not backoff.sleep(delay, self.stop):
            from recfetch.errors import InterruptedError_

            raise InterruptedError_("interrupted", provider=self.provider)

    def error_for(self, response: httpx.Response, *, what: str = "request") -> RecfetchError:
        """Map a failed response: the provider's mapper first, then the generic rules."""
        body = parse_json(response)
        if self.error_mapper is not None:
            mapped = self.error_mapper(response, body)
            if mapped is not None:
                mapped.provider = mapped.provider or self.provider
                mapped.http_status = mapped.http_status or response.status_code
                return mapped
        return generic_error(response, provider=self.provider, what=what, detail=_detail(body))


def _clean(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}


def _detail(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "title"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    return None


def generic_error(
    response: httpx.Response, *, provider: str, what: str, detail: str | None = None
) -> RecfetchError:
    """Status-based mapping used when a provider has nothing more specific to say."""
    status = response.status_code
    suffix = f": {detail}" if detail else ""
    env = f"RECFETCH_{provider.upper()}_"
    if status in (401, 403):
        return AuthError(
            f"{provider} rejected the credentials (HTTP {status}){suffix}",
            hint=f"run `recfetch {provider} login` or set {env}* variables",
            provider=provider,
            http_status=status,
        )
    if status == 404:
        return NotFoundError(
            f"{provider}: {what} not found (HTTP 404){suffix}",
            hint=f"check the id with `recfetch {provider} list`",
            provider=provider,
            http_status=status,
        )
    if status == 429:
        return RateLimitedError(
            f"{provider} is still rate limiting after retries (HTTP 429){suffix}",
            hint="wait a few minutes, or lower --jobs",
            provider=provider,
            http_status=status,
        )
    if status >= 500:
        return ProviderError(
            f"{provider} failed with HTTP {status} after retries{suffix}",
            hint="the provider is having trouble; try again later",
            provider=provider,
            http_status=status,
            retryable=True,
        )
    return ProviderError(
        f"{provider} refused the {what} (HTTP {status}){suffix}",
        provider=provider,
        http_status=status,
    )
