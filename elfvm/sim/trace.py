"""Reading memory traces: files, stdin, .gz/.xz, lackey or plain lines -> batches of references.

A `TraceReader` streams: it holds one chunk of input and one batch of references at a time, so
memory stays the same however long the trace is. Compression is recognised by its magic bytes
(so a compressed stdin works too), whatever the file is called.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from elfvm.errors import UsageError
from elfvm.sim import jit
from elfvm.sim import parse as P

CHUNK = 1 << 20                 # bytes of (decompressed) text parsed per call
MAX_LINE = CHUNK                # the longest line read (an endless one is an error, not a heap)
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
    import lzma                          # only for xz input: its library costs every start-up

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


class ByteSource:
    """The text of a trace, read straight into the caller's buffer (an uncompressed file or
    stdin: no copy) or from a decompressor's chunks. `raw_read` counts the bytes of the file
    itself (compressed or not), for the progress bar."""

    def __init__(self, path: str):
        if path == "-":
            self.f, self.name, self.size = sys.stdin.buffer, "<stdin>", None
            self._close = False
        else:
            if not os.path.exists(path):
                raise TraceError(f"--trace {path}: no such file")
            if os.path.isdir(path):
                raise TraceError(f"--trace {path}: is a directory")
            try:
                self.f = open(path, "rb")
            except OSError as e:
                raise TraceError(f"--trace {path}: {e.strerror}") from None
            self.name, self.size, self._close = path, os.path.getsize(path), True
        self.raw_read = 0
        first = self._read_raw()
        self._pending, self._off = first, 0
        self._chunks = None
        if first.startswith(GZIP_MAGIC) or first.startswith(XZ_MAGIC):
            raw = itertools.chain([first], iter(self._read_raw, b""))
            self._chunks = (_gunzip if first.startswith(GZIP_MAGIC) else _unxz)(raw, self.name)
            self._pending = b""

    def _read_raw(self) -> bytes:
        read = getattr(self.f, "read1", self.f.read)
        b = read(CHUNK)
        self.raw_read += len(b)
        return b

    def readinto(self, mv: memoryview) -> int:
        """Fill the start of `mv`; 0 at the end of the text."""
        while True:
            if self._off < len(self._pending):
                take = min(len(mv), len(self._pending) - self._off)
                mv[:take] = self._pending[self._off:self._off + take]
                self._off += take
                return take
            if self._chunks is None:
                readinto = getattr(self.f, "readinto1", self.f.readinto)
                n = readinto(mv)
                self.raw_read += n or 0
                return n or 0
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._pending, self._off = nxt, 0

    def close(self) -> None:
        if self._close:
            self.f.close()


def sniff_format(sample: bytes, complete: bool = True) -> str | None:
    """lackey if the first line that says anything is a lackey record or a ==pid== line.

    With `complete` False the sample is only the start of the input (a pipe's first bytes): its
    last line may be cut, and None means "read more first"."""
    lines = sample[:1 << 16].split(b"\n")
    if not complete:
        lines = lines[:-1]
    for line in lines[:200]:
        s = line.strip()
        if not s or s.startswith(b"#"):
            continue
        return "lackey" if _LACKEY_LINE.match(line) else "plain"
    return "plain" if complete else None


class TraceReader:
    """One trace as batches of (page numbers int64, flags uint8) references.

    `page_shift` turns addresses into page numbers; `max_addr` is the highest linear address the
    MMU geometry can express (anything above is a malformed line). With `reuse` the batches are
    views of the same two arrays: each must be used before the next is asked for.
    """

    def __init__(self, path: str, fmt: str, page_shift: int, max_addr: int, *,
                 skip_bad: bool = False, batch: int = BATCH, reuse: bool = False):
        self.path = path
        self.source = ByteSource(path)
        self.name, self.size = self.source.name, self.source.size
        self.page_shift = page_shift
        self.max_addr = max_addr
        self.skip_bad = skip_bad
        self.batch = batch
        self.reuse = reuse
        self.state = np.zeros(P.NST, dtype=np.int64)
        self.format: str | None = None if fmt == "auto" else fmt
        self.bad: BadLines | None = None

    @property
    def raw_bytes_read(self) -> int:
        return self.source.raw_read

    @property
    def lines(self) -> int:
        return int(self.state[P.ST_LINE])

    @property
    def records(self) -> int:
        return int(self.state[P.ST_RECORDS])

    def _bad_line_text(self, buf: np.ndarray) -> str:
        st = self.state
        raw = bytes(buf[st[P.ST_BAD_START]:st[P.ST_BAD_END]]).rstrip(b"\r")
        text = raw.decode("utf-8", "replace")
        return text if len(text) <= 60 else text[:57] + "..."

    def _reason(self) -> str:
        why = int(self.state[P.ST_BAD_WHY])
        reason = P.WHY.get(why, "malformed")
        if why == 5:
            reason += f" (above {self.max_addr:#x})"
        return reason

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        try:
            yield from self._batches()
        finally:
            self.source.close()

    def _batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        st = self.state
        parse_lines = jit.compiled(P.parse_lines)
        buf = np.empty(CHUNK, dtype=np.uint8)
        have, final, fmt_code = 0, False, -1
        out_v = np.empty(self.batch, dtype=np.int64)
        out_f = np.empty(self.batch, dtype=np.uint8)
        while True:
            mv = memoryview(buf)
            got = self.source.readinto(mv[have:])    # parse what arrived (a pipe: now, not
            if got:                                  # once a whole MiB is in)
                have += got
            else:
                final = True
            if fmt_code < 0:
                if self.format is None:
                    self.format = sniff_format(bytes(buf[:min(have, 1 << 16)]),
                                               final or have >= 1 << 16)
                    if self.format is None:
                        continue
                fmt_code = P.FMT_LACKEY if self.format == "lackey" else P.FMT_PLAIN
            pos = 0
            while True:
                if not self.reuse:
                    out_v = np.empty(self.batch, dtype=np.int64)
                    out_f = np.empty(self.batch, dtype=np.uint8)
                bad_before = st[P.ST_BAD]
                pos, k, status = parse_lines(buf, have, pos, 1 if final else 0, fmt_code,
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
            left = have - pos
            if left == len(buf):                     # one line longer than the buffer
                raise TraceError(f"{self.name}:{self.lines + 1}: a line longer than "
                                 f"{MAX_LINE >> 20} MiB without a newline: not a {self.format} trace")
            if left:
                buf[:left] = buf[pos:have].copy()
            have = left
