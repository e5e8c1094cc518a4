"""Keeping secrets and presigned URLs out of every sink: messages, logs, tracebacks."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from recfetch.urls import is_presigned, redact_url, strip_signed

_lock = threading.Lock()
_secrets: set[str] = set()

SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "x-client-secret",
        "x-client-id",
        "x-auth-token",
        "api-key",
        "x-auth-key",
        "cookie",
        "set-cookie",
    }
)

# The optional marker keeps scrubbing idempotent: an already redacted URL stays as it is.
_URL_RE = re.compile(r"https?://[^\s\"'<>`]+(?:<redacted>)?")
_TRAILING = ").,;:]}"
"""Punctuation that ends a sentence or a bracket after a URL (`(see http://h:8000)`), not part of it."""


def register_secret(value: str | None) -> None:
    """Remember a secret so that `scrub` removes it from any text we emit."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def forget_secrets() -> None:
    """Forget every registered secret: for a process that runs several commands (tests, embedding),
    so one command's secrets neither leak into nor silently protect the next one's output."""
    with _lock:
        _secrets.clear()


def mask(value: str | None) -> str:
    """`****abcd`: enough to tell two keys apart, never enough to use one."""
    if not value:
        return ""
    return "****" + value[-4:] if len(value) > 8 else "****"


def scrub(text: str) -> str:
    """Remove registered secrets and URL query strings from ``text``."""
    text = _URL_RE.sub(_redact_match, text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "****")
    return text


def _redact_match(match: re.Match[str]) -> str:
    url = match.group(0)
    core = url.rstrip(_TRAILING) if not url.endswith("<redacted>") else url
    return redact_url(core) + url[len(core) :]


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("****" if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


_CREDENTIAL_KEY = re.compile(
    r"passw(?:or)?d|passphrase|secret|privatekey|accesskey|apikey|token|authorization|credential|"
    r"signature|cookie|sessionkey|sastoken"
)
"""Key names (lowercased, without `_`, `-`, spaces) whose values are credentials (SPEC §4)."""


_KEY_VERDICTS: dict[str, bool] = {}
"""`is_credential_key` answers by key name: provider objects repeat the same few dozen keys on
every record, so each name is judged once (up to `_KEY_VERDICTS_MAX` names; more are judged each time)."""
_KEY_VERDICTS_MAX = 4096


def is_credential_key(key: object) -> bool:
    """Whether a key of a provider object names a credential: `password`, `privateKey`, `X-Api-Key`..."""
    if not isinstance(key, str):
        return False
    verdict = _KEY_VERDICTS.get(key)
    if verdict is None:
        verdict = bool(_CREDENTIAL_KEY.search(re.sub(r"[\W_]", "", key.lower())))
        if len(_KEY_VERDICTS) < _KEY_VERDICTS_MAX:
            _KEY_VERDICTS[key] = verdict
    return verdict


def scrub_raw(value: Any) -> Any:
    """A provider object made safe for any sink: at every depth, values under credential-like keys
    and presigned URLs are removed (SPEC §4). The input is not modified."""
    if isinstance(value, Mapping):
        return {k: scrub_raw(v) for k, v in value.items() if not is_credential_key(k) and not is_presigned(v)}
    if isinstance(value, list | tuple):
        return [scrub_raw(v) for v in value if not is_presigned(v)]
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_str(text: str) -> str:
    """``text`` with every lone UTF-16 surrogate replaced by U+FFFD (ASCII text, the usual case,
    is returned as it is without a scan)."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def valid_text(value: Any) -> Any:
    """``value`` (any JSON-like structure) with every lone UTF-16 surrogate replaced by U+FFFD.

    A JavaScript backend that cuts a title inside an emoji sends one; it cannot be encoded
    as UTF-8, so it would crash every JSON, CSV or terminal write and every file name.
    """
    if isinstance(value, str):
        return valid_str(value)
    if isinstance(value, Mapping):
        return {valid_text(k): valid_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [valid_text(v) for v in value]
    return value


class ScrubbedRaw(dict):  # type: ignore[type-arg]
    """A ``raw`` made by `clean_raw` (and never modified after): cleaning it again is a no-op,
    so a `Recording` built from it, or copied with `replace`, does not walk it a second time."""


def clean_raw(value: Any, *, redact_urls: bool = False) -> Any:
    """``valid_text(scrub_raw(value))`` in one walk: what every recording's ``raw`` becomes before
    any sink sees it (credentials and presigned URLs removed at every depth, valid Unicode).

    ``redact_urls`` first redacts every URL with a query or userinfo as `strip_signed` does
    (a provider that keeps no URL query in ``raw``). A mapping comes back as a `ScrubbedRaw`.
    """
    if type(value) in _CLEAN_TYPES and not redact_urls:
        return value
    if isinstance(value, Mapping):
        return _clean_mapping(value, redact_urls, ScrubbedRaw())
    if isinstance(value, str):  # a lone string is text, not an item to drop
        return valid_str(strip_signed(value) if redact_urls else value)
    return _clean(value, redact_urls)


class LazyRaw(Mapping[Any, Any]):
    """A provider object as a recording's ``raw``, cleaned by `clean_raw` on its first read.

    Every read (item, key, length, iteration, ``dict()``, ``repr``, ``==``) goes through the
    clean copy, and the object as received is let go once it is made: nothing reads the uncleaned
    object through it. A recording a nothing-new pull only skips (its event prints no ``raw``)
    is never cleaned at all. `clean_raw` passes it through as already clean.
    """

    __slots__ = ("_clean", "_drop", "_redact", "_source")

    def __init__(
        self, source: Mapping[Any, Any], *, redact_urls: bool = False, drop: frozenset[str] = frozenset()
    ) -> None:
        """``drop``: top-level keys left out of the clean copy (a provider's download URLs)."""
        self._source: Mapping[Any, Any] | None = source
        self._redact = redact_urls
        self._drop = drop
        self._clean: dict[Any, Any] | None = None

    def _data(self) -> dict[Any, Any]:
        source = self._source  # read first: the source goes only after the clean copy is set
        clean = self._clean
        if clean is None:
            assert source is not None
            keys = _dropping(self._drop) if self._drop else _KEYS
            clean = _clean_mapping(source, self._redact, ScrubbedRaw(), keys)
            self._clean = clean  # two threads reading at once both make the same clean copy
            self._source = None
        return clean

    def __getitem__(self, key: Any) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return repr(self._data())

    def copy(self) -> dict[Any, Any]:
        """The clean copy as a plain dict: one copy, not a lookup through this view per key."""
        return dict(self._data())


_CLEAN_TYPES = (ScrubbedRaw, LazyRaw)


def _clean(value: Any, redact: bool) -> Any:
    kind = type(value)
    if value is None or kind in _SCALARS:
        return value
    if isinstance(value, str):
        return _clean_text(value, redact)
    if kind is dict or isinstance(value, Mapping):
        return _clean_mapping(value, redact, {})
    if kind is list or isinstance(value, list | tuple):
        return [v for v in (_clean(item, redact) for item in value) if v is not _DROP]
    return valid_text(value)


def _clean_mapping(
    value: Mapping[Any, Any], redact: bool, out: dict[Any, Any], keys: dict[str, Any] | None = None
) -> dict[Any, Any]:
    """``keys``: the key table to use (`_KEYS`, or one of `_dropping`'s for a top level)."""
    if keys is None:
        keys = _KEYS
    for k, v in value.items():
        key = keys.get(k)
        if key is None:
            key = _clean_key(k, keys)
        if key is _DROP:
            continue
        kind = type(v)
        if kind is str:
            if v[:1] in _H or not v.isascii():  # else plain text: kept as it is (the usual case)
                v = _clean_text(v, redact)
                if v is _DROP:
                    continue
        elif kind is dict:  # a nested object, the usual container: no detour through `_clean`
            v = _clean_mapping(v, redact, {})
        elif v is not None and kind not in _SCALARS:
            v = _clean(v, redact)  # a list, another mapping, or a str subclass (text: may be dropped)
            if v is _DROP:
                continue
        out[key] = v
    return out


_KEYS: dict[str, Any] = {}
"""Key name -> the key as written in a clean mapping, or `_DROP` for a credential's key: the
same few dozen names come on every record (up to `_KEY_VERDICTS_MAX` names are remembered)."""

_DROPPING: dict[frozenset[str], dict[str, Any]] = {}


def _dropping(drop: frozenset[str]) -> dict[str, Any]:
    """A key table like `_KEYS` in which the names in ``drop`` are `_DROP` too: a `LazyRaw`
    leaves its ``drop`` keys out in the one walk that cleans it, without a filtered copy first."""
    keys = _DROPPING.get(drop)
    if keys is None:
        keys = _DROPPING[drop] = dict.fromkeys(drop, _DROP)
    return keys


def _clean_key(key: Any, keys: dict[str, Any]) -> Any:
    clean = _DROP if is_credential_key(key) else valid_str(key) if isinstance(key, str) else valid_text(key)
    if type(key) is str and len(keys) < _KEY_VERDICTS_MAX:
        keys[key] = clean
    return clean


def _clean_text(text: str, redact: bool) -> Any:
    """``text`` as valid Unicode, redacted when ``redact`` and a URL with a query or userinfo;
    `_DROP` when it is a presigned URL (only a string starting with http(s):// can be one)."""
    if text[:1] in _H:
        if redact and ("?" in text or "@" in text or "#" in text):
            text = strip_signed(text)
        if is_presigned(text):
            return _DROP
    return valid_str(text)


_DROP = object()
"""A value that `clean_raw` leaves out."""
_H = frozenset("hH")  # a set: `v[:1] in _H` is one hash lookup
_SCALARS = frozenset({int, float, bool})
