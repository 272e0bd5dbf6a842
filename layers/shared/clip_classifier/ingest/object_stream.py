"""A seekable, read-only file over a forward-only object body, so decoding starts while bytes still arrive.

Pillow parses the header, then pulls the pixel data in 64 KiB blocks and decodes each block as it comes.
Handing it the live S3 response instead of a finished download overlaps the decode with the transfer: at
80 MB/s a 3.2 MB 12 MP JPEG takes ~41 ms to arrive and ~33 ms to decode, 76–82 ms one after the other and
~45 ms streamed (``bench/bench_pipeline.py``). Everything read is kept, at most the size limit, because
some decoders seek back (TIFF, MPO).

A failure of the body is never the image's fault, so it is raised as :class:`TransientSourceError` (the
event is retried) — not as an ``OSError``, which the decoders would report as a corrupt file and so leave a
``failed`` record for a good image. ``tests/unit/ingest/test_object_stream.py`` breaks the body of every fixture
format at several points and checks that this is what reaches the caller.
"""

from __future__ import annotations

import io
import time
from typing import Protocol

from clip_classifier.exceptions import ImageTooLargeError, TransientSourceError

BLOCK_SIZE = 64 * 1024


class Readable(Protocol):
    def read(self, amt: int, /) -> bytes: ...

    def close(self) -> None: ...


class ObjectStream(io.RawIOBase):
    """Buffers what the body has delivered; reads past it pull more, blocking until it arrives."""

    def __init__(self, body: Readable, *, where: str, max_bytes: int, block_size: int = BLOCK_SIZE) -> None:
        super().__init__()
        self._body = body
        self._where = where
        self._max_bytes = max_bytes
        self._block_size = block_size
        self._buffer = bytearray()
        self._pos = 0
        self._eof = False
        #: The first failure of the body, if any: every later read raises it again rather than resuming
        #: a broken transfer.
        self.error: TransientSourceError | None = None
        #: Milliseconds spent waiting for the body: the transfer's share of the decode time.
        self.wait_ms = 0.0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            self._fill_to(None)
            target = len(self._buffer) + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._pos = target
        return target

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            self._fill_to(None)
            size = max(0, len(self._buffer) - self._pos)
        else:
            self._fill_to(self._pos + size)
        chunk = bytes(self._buffer[self._pos : self._pos + size])
        self._pos += len(chunk)
        return chunk

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(buffer))
        memoryview(buffer)[: len(chunk)] = chunk
        return len(chunk)

    def drain(self) -> int:
        """Read the body to its end, so the SDK checks the length (and checksum, when S3 sent one)."""
        self._fill_to(None)
        return len(self._buffer)

    def close(self) -> None:
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()

    def _fill_to(self, end: int | None) -> None:
        """Pull blocks until the buffer reaches ``end`` bytes (``None``: the end of the body)."""
        if self.error is not None:
            raise self.error
        while not self._eof and (end is None or len(self._buffer) < end):
            start = time.perf_counter()
            try:
                block = self._body.read(self._block_size)
            # Whatever the transport raises mid-body (timeouts, resets, short or mismatching content),
            # the object itself is fine: retry later.
            except Exception as exc:
                self.error = TransientSourceError(f"reading {self._where} failed: {exc}")
                raise self.error from exc
            finally:
                self.wait_ms += (time.perf_counter() - start) * 1000
            if not block:
                self._eof = True
            elif len(self._buffer) + len(block) > self._max_bytes:
                # The response's ContentLength was checked already; this guards a body longer than it said.
                raise ImageTooLargeError(f"image is over the {self._max_bytes}-byte limit")
            else:
                self._buffer += block
