"""Content-Encoding of a storage body: decoded (gzip, deflate) or refused, never saved encoded.

We ask for ``Accept-Encoding: identity``; a host that compresses anyway would
otherwise leave a gzip stream under the recording's name. zlib checks the gzip
trailer (CRC-32 and length), so a decoded body is verified as it ends; a body
whose compressed stream did not reach its end is reported as cut off.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

__all__ = ["DECODABLE", "Decoder", "EncodingCutOff"]

DECODABLE = frozenset({"gzip", "x-gzip", "deflate"})
"""Codings recfetch decodes; any other is refused."""


class EncodingCutOff(Exception):
    """The compressed stream ended before its end marker: the transfer was cut off."""


class Decoder:
    """Decodes one coding, handing out at most ``piece`` decoded bytes at a time (memory stays
    bounded whatever the compression ratio)."""

    def __init__(self, coding: str, piece: int) -> None:
        if coding not in DECODABLE:
            raise ValueError(coding)
        self.coding = coding
        self.piece = piece
        gzip = coding in ("gzip", "x-gzip")
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
        self._raw_fallback = not gzip  # some servers send raw deflate without the zlib header
        self._started = False

    def iterate(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The decoded bytes of ``chunks``; raises `EncodingCutOff` if the stream is incomplete,
        and `zlib.error` if it is corrupt (a wrong CRC-32 or length included)."""
        for chunk in chunks:
            yield from self._feed(chunk)
        if not self._zlib.eof:
            raise EncodingCutOff(f"the {self.coding} stream ended before its end marker")

    def _feed(self, data: bytes) -> Iterator[bytes]:
        if data and self._zlib.eof:
            raise zlib.error("data after the end of the compressed stream")
        while data:
            try:
                out = self._zlib.decompress(data, self.piece)
            except zlib.error:
                if not (self._raw_fallback and not self._started):
                    raise
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                self._raw_fallback = False
                continue
            self._started = True
            if out:
                yield out
            if self._zlib.eof:
                if self._zlib.unused_data:
                    raise zlib.error("data after the end of the compressed stream")
                return
            data = self._zlib.unconsumed_tail
