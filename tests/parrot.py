"""A sixth provider that exists only in the tests: it proves the provider seam.

`register(monkeypatch)` adds it to the registry (one line) and its stand-in to the sandbox
(one line); everything else — the CLI sub-app with every common verb, config handling,
secret masking and scrubbing, the contract suite — comes from the shared code.

Run as a script (`python tests/parrot.py ARGS`) it is `recfetch` with Parrot registered, so
subprocess tests can reach it too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from recfetch.providers import REGISTRY
from recfetch.providers.base import DownloadTarget, ListQuery, Provider, Recording, Setting
from recfetch.sandbox import STAND_INS
from recfetch.sandbox.httpserver import PLANTED_SECRET, Request, Response, Server, json_response
from recfetch.timeparse import parse_provider_time

PASSPHRASE = "parrot-sandbox-phrase-7Yq2Lm"
"""A secret whose name holds none of "secret", "token", "key", "password": only `secret=True` marks it."""


class ParrotProvider(Provider):
    name: ClassVar[str] = "parrot"
    title: ClassVar[str] = "Parrot"
    default_base_url: ClassVar[str | None] = None
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("base_url", "API base URL.", prompt=False),
        Setting("passphrase", "The account's passphrase.", secret=True),
    )

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Phrase {self.config['passphrase']}"}

    def verify(self) -> str:
        self.api.get_json("recordings", params={"limit": 1}, what="recordings list")
        return "parrot account"

    def _recording(self, obj: dict[str, Any]) -> Recording:
        started = parse_provider_time(obj.get("started"))
        return Recording(
            provider=self.name,
            profile=self.profile,
            ref=str(obj["id"]),
            id=str(obj["id"]),
            status="ready",
            downloadable=True,
            started_at=started,
            size_bytes=obj.get("size"),
            media_type="audio/mpeg",
            filename=f"{obj['id']}.mp3",
            raw=obj,
        )

    def iter_recordings(self, query: ListQuery) -> Iterator[Recording]:
        cursor: str | None = None
        while True:
            page = self.api.get_json("recordings", params={"cursor": cursor}, what="recordings list")
            for obj in page["items"]:
                yield self._recording(obj)
            cursor = page.get("next")
            if not cursor:
                return

    def get_recording(self, ref: str) -> Recording:
        return self._recording(self.api.get_json(f"recordings/{ref}", what=f"recording {ref}"))

    def mint(self, recording: Recording) -> DownloadTarget:
        obj = self.api.get_json(f"recordings/{recording.ref}/media", what=f"recording {recording.ref}")
        return DownloadTarget(url=obj["url"], expires_at=parse_provider_time(obj["expires_at"]))


class ParrotStandIn:
    """Three pages of recordings behind a passphrase, media presigned on the shared storage host."""

    name = "parrot"

    def __init__(self, storage: Any, *, port: int = 0, seed: int = 0, recordings: int | None = None) -> None:
        self.storage = storage
        self.server = Server("parrot", port=port)
        rng = random.Random(f"parrot:{seed}")
        start = datetime(2026, 1, 1, tzinfo=UTC)
        self.items = []
        for index in range(recordings or 7):
            rid = f"p{index:03d}"
            data = rng.randbytes(2000 + index)
            storage.put_bytes(self.storage_key(rid), data)
            started = (start + timedelta(hours=index)).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.items.append(
                {
                    "id": rid,
                    "started": started,
                    "size": len(data),
                    "owner": {"profile": {"sessionKey": PLANTED_SECRET}},
                    "links": [{"preview": f"{storage.url}/p/{rid}?X-Amz-Signature=abc"}],
                }
            )
        self.server.route("GET", r"/recordings")(self._list)
        self.server.route("GET", r"/recordings/(?P<rid>[^/]+)")(self._one)
        self.server.route("GET", r"/recordings/(?P<rid>[^/]+)/media")(self._media)

    @staticmethod
    def storage_key(ref: str) -> str:
        return f"parrot/{ref}.mp3"

    def profile(self) -> dict[str, str]:
        return {"base_url": self.server.url, "passphrase": PASSPHRASE}

    def _denied(self, request: Request) -> Response | None:
        given = request.header("authorization")
        if given != f"Phrase {PASSPHRASE}":
            return json_response({"error": f"bad passphrase in {given!r}"}, 401)  # quotes it back
        return None

    def _list(self, request: Request) -> Response:
        start = int(request.arg("cursor") or 0)
        items = self.items[start : start + 3]
        more = start + 3 < len(self.items)
        return self._denied(request) or json_response(
            {"items": items, "next": str(start + 3) if more else None}
        )

    def _one(self, request: Request) -> Response:
        found = next((i for i in self.items if i["id"] == request.params["rid"]), None)
        if found is None:
            return json_response({"error": "no such recording"}, 404)
        return self._denied(request) or json_response(found)

    def _media(self, request: Request) -> Response:
        url, expires = self.storage.presign(self.storage_key(request.params["rid"]), expires_in=600)
        return self._denied(request) or json_response({"url": url, "expires_at": expires.isoformat()})


def register(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parrot joins the registry and the sandbox for one test."""
    monkeypatch.setitem(REGISTRY, "parrot", ParrotProvider)
    monkeypatch.setitem(STAND_INS, "parrot", ParrotStandIn)


if __name__ == "__main__":
    from recfetch.cli import main

    REGISTRY["parrot"] = ParrotProvider
    main()
