"""Reading memory traces: files, stdin, .gz/.xz, lackey or plain lines -> batches of references.

A `TraceReader` streams: it holds one chunk of input and one batch of references at a time, so
memory stays the same however long the trace is. Compression is recognised by its magic bytes
(so a compressed stdin works too), whatever the file is called.
"""

from __future__ import annotations

import itertools
import lzma
import os
import re
import sys
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

from elfvm.errors import UsageError
from elfvm.sim import parse as P

CHUNK = 1 << 20                 # bytes of (decompressed) text parsed per call
BATCH = 1 << 16                 # references per batch
GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"

FORMATS = ("lackey", "plain")
_LACKEY_LINE = re.compile(rb"^\s*(==|[ILSM]\s+[0-9A-Fa-f]+,\d+\s*$)")


class TraceError(UsageError):
    """A trace that cannot be read: a one-line message, exit code 2."""


@dataclass(frozen=True)
class BadLines:
    """Malformed lines skipped with --skip-bad-lines: how many, and the first one."""

    trace: str
    count: int
    first_line: int
    first_reason: str
    first_text: str


def _raw_chunks(f: BinaryIO, counter: list[int]) -> Iterator[bytes]:
    read = getattr(f, "read1", f.read)
    while True:
        b = read(CHUNK)
        if not b:
            return
        counter[0] += len(b)
        yield b


def _gunzip(chunks: Iterator[bytes], name: str) -> Iterator[bytes]:
    """Decompress concatenated gzip members, never more than CHUNK bytes of output at once."""
    d = None
    for data in chunks:
        while data:
            if d is None:
                if not data.strip(b"\0"):
                    break                               # padding after the last member
                d = zlib.decompressobj(wbits=31)
            try:
                out = d.decompress(data, CHUNK)
            except zlib.error as e:
                raise TraceError(f"{name}: corrupt gzip data ({e})") from None
            if out:
                yield out
            if d.eof:
                data, d = d.unused_data, None
            else:
                data = d.unconsumed_tail
    if d is not None:
        tail = d.flush()
        if tail:
            yield tail
        if not d.eof:
            raise TraceError(f"{name}: gzip data ends early (truncated file?)")


def _unxz(chunks: Iterator[bytes], name: str) -> Iterator[bytes]:
    """Decompress concatenated xz streams, never more than CHUNK bytes of output at once."""
    d = None
    for data in chunks:
        while True:
            if d is None:
                if not data.strip(b"\0"):
                    break
                d = lzma.LZMADecompressor()
            try:
                out = d.decompress(data, CHUNK)
            except (lzma.LZMAError, EOFError) as e:
                raise TraceError(f"{name}: corrupt xz data ({e})") from None
            data = b""
            if out:
                yield out
            if d.eof:
                data, d = d.unused_data, None
            elif d.needs_input:
                break
    if d is not None and not d.eof:
        raise TraceError(f"{name}: xz data ends early (truncated file?)")


def open_bytes(path: str) -> tuple[Iterator[bytes], str, list[int], int | None]:
    """(text chunks, display name, [raw bytes read so far], raw size or None) for a path or '-'."""
    counter = [0]
    if path == "-":
        f = sys.stdin.buffer
        name, size = "<stdin>", None
    else:
        if not os.path.exists(path):
            raise TraceError(f"--trace {path}: no such file")
        if os.path.isdir(path):
            raise TraceError(f"--trace {path}: is a directory")
        try:
            f = open(path, "rb")
        except OSError as e:
            raise TraceError(f"--trace {path}: {e.strerror}") from None
        name, size = path, os.path.getsize(path)
    raw = _raw_chunks(f, counter)
    first = next(raw, b"")
    chunks = itertools.chain([first] if first else [], raw)
    if first.startswith(GZIP_MAGIC):
        text = _gunzip(chunks, name)
    elif first.startswith(XZ_MAGIC):
        text = _unxz(chunks, name)
    else:
        text = chunks
    return text, name, counter, size


def sniff_format(sample: bytes) -> str:
    """lackey if the first line that says anything is a lackey record or a ==pid== line."""
    for line in sample.split(b"\n")[:200]:
        s = line.strip()
        if not s or s.startswith(b"#"):
            continue
        return "lackey" if _LACKEY_LINE.match(line) else "plain"
    return "plain"


class TraceReader:
    """One trace as batches of (page numbers int64, flags uint8) references.

    `page_shift` turns addresses into page numbers; `max_addr` is the highest linear address the
    MMU geometry can express (anything above is a malformed line).
    """

    def __init__(self, path: str, fmt: str, page_shift: int, max_addr: int, *,
                 skip_bad: bool = False, batch: int = BATCH):
        self.path = path
        self.text, self.name, self._raw, self.size = open_bytes(path)
        self.requested_format = fmt
        self.page_shift = page_shift
        self.max_addr = max_addr
        self.skip_bad = skip_bad
        self.batch = batch
        self.state = np.zeros(P.NST, dtype=np.int64)
        self.format: str | None = None if fmt == "auto" else fmt
        self.bad: BadLines | None = None

    @property
    def raw_bytes_read(self) -> int:
        return self._raw[0]

    @property
    def lines(self) -> int:
        return int(self.state[P.ST_LINE])

    @property
    def records(self) -> int:
        return int(self.state[P.ST_RECORDS])

    def _bad_line_text(self, buf: bytes) -> str:
        st = self.state
        text = buf[st[P.ST_BAD_START]:st[P.ST_BAD_END]].rstrip(b"\r").decode("utf-8", "replace")
        return text if len(text) <= 60 else text[:57] + "..."

    def _reason(self) -> str:
        why = int(self.state[P.ST_BAD_WHY])
        reason = P.WHY.get(why, "malformed")
        if why == 5:
            reason += f" (above {self.max_addr:#x})"
        return reason

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        st = self.state
        buf = b""
        final = False
        text = self.text
        fmt_code = None
        while True:
            if not final:
                nxt = next(text, None)
                if nxt is None:
                    final = True
                else:
                    buf = buf + nxt if buf else nxt
                    if len(buf) < 4096 and not final:
                        continue              # a line needs to be whole: read a bit more
            if fmt_code is None:
                if self.format is None:
                    self.format = sniff_format(buf)
                fmt_code = P.FMT_LACKEY if self.format == "lackey" else P.FMT_PLAIN
            arr = np.frombuffer(buf, dtype=np.uint8)
            pos = 0
            while True:
                out_v = np.empty(self.batch, dtype=np.int64)
                out_f = np.empty(self.batch, dtype=np.uint8)
                bad_before = st[P.ST_BAD]
                pos, k, status = P.parse_lines(arr, len(arr), pos, 1 if final else 0, fmt_code,
                                               self.page_shift, self.max_addr,
                                               1 if self.skip_bad else 0, out_v, out_f, st)
                if bad_before == 0 and st[P.ST_BAD] > 0:
                    self.bad = BadLines(self.name, 0, int(st[P.ST_BAD_LINE]), self._reason(),
                                        self._bad_line_text(buf))
                if status == P.BAD_LINE:
                    raise TraceError(f"{self.name}:{int(st[P.ST_BAD_LINE])}: malformed {self.format} "
                                     f"line: {self._reason()}: {self._bad_line_text(buf)!r}")
                if k:
                    yield out_v[:k], out_f[:k]
                if status == P.NEED_INPUT:
                    break
            if self.bad is not None:
                self.bad = BadLines(self.name, int(st[P.ST_BAD]), self.bad.first_line,
                                    self.bad.first_reason, self.bad.first_text)
            if final:
                return
            buf = buf[pos:]
