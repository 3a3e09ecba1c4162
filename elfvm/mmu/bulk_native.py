"""The per-address loop of `translate --addresses FILE --format jsonl|json` in C (jsonlines.c).

The answers stay the MMU model's: `JsonLines` (elfvm.mmu.bulk) works out each page once, as it
does without this module; here each answer it has cached is handed to the compiled loop
(`JsonLines.shared_answer`), which then reads the address lines of a block, finds each one's
answer and writes its line, byte for byte what `JsonLines.line()` writes. A line the loop cannot
answer (a page not described yet, a symbol, a selector, a number it does not parse exactly as
int(x, 0) does, an error) goes back to `JsonLines.line()`, in order. Without a C compiler
`native_lines()` is None and the Python loop answers everything (the same bytes, slower).
"""

from __future__ import annotations

import ctypes
import os
import struct

from json.encoder import encode_basestring_ascii as _quote

from elfvm.host.native import build, load_library
from elfvm.mmu.bulk import JsonLines
from elfvm.mmu.mmu import TranslateError

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jsonlines.c")
_OUT = 1 << 18                   # bytes of output per call into the loop (a 1 MiB buffer: ~0.4 ms
#                                  zeroing it, for no fewer page faults later)
_BOUND = 1 << 16                 # answers kept by the loop, whatever the input
_DONE, _MISS = 0, 1
_u64, _size = ctypes.c_uint64, ctypes.c_size_t


def _library() -> ctypes.CDLL | None:
    lib = load_library(build(_SRC))
    if lib is None:
        return None
    vp, cp, u32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32
    lib.xl_new.restype = vp
    lib.xl_new.argtypes = [_u64, ctypes.c_int, cp, u32]
    lib.xl_free.argtypes = lib.xl_clear.argtypes = [vp]
    lib.xl_known.argtypes = [vp, _u64]
    lib.xl_add.argtypes = [vp, ctypes.c_int, _u64, _u64, _u64, ctypes.c_int64, cp, u32, u32, cp, cp]
    lib.xl_run.argtypes = [vp, cp, _size, ctypes.POINTER(_size), ctypes.c_char_p, _size, ctypes.POINTER(_size)]
    lib.xl_span.argtypes = [vp, _u64, _u64]
    lib.xl_hole.argtypes = [vp, ctypes.c_int, _u64, _u64, u32, ctypes.POINTER(ctypes.c_int64), cp, u32]
    lib.xl_stack.argtypes = [vp, _u64, _u64]
    lib.xl_next_id.restype = ctypes.c_int64
    lib.xl_next_id.argtypes = [vp]
    lib.xl_one.restype = ctypes.c_long
    lib.xl_one.argtypes = [vp, _u64, cp, _size, ctypes.c_char_p, _size]
    return lib


class _Ids:
    """The compact format's page numbers, counted by the compiled loop (which numbers the pages
    of a hole itself): one count for both loops."""

    def __init__(self, lib, ctx):
        self.lib, self.ctx = lib, ctx

    def __iter__(self):
        return self

    def __next__(self) -> int:
        return self.lib.xl_next_id(self.ctx)


class NativeLines:
    """The compiled loop over the address lines of ASCII blocks, answering from `render`'s cache."""

    def __init__(self, lib: ctypes.CDLL, render: JsonLines, sep: str):
        self.lib, self.render, self.sep = lib, render, sep
        self.ctx = lib.xl_new(render.limit, render.shift, sep.encode(), len(sep))
        self.out = ctypes.create_string_buffer(_OUT)
        self.view = memoryview(self.out).cast("B")
        self.pos, self.outlen = _size(0), _size(0)
        self.answers = 0                         # handed to the loop (it keeps _BOUND at most)
        self.runs = True                         # a hole's pages handed over a table at a time
        self.one_buf = None                      # one()'s, made when first needed
        if self.ctx:
            if render.ids is not None:
                render.ids = _Ids(lib, self.ctx)
            render.native = self

    def one(self, lin: int, text: str) -> str | None:
        """The line of an address whose answer the loop has (its page's record first, the first
        time), for an input the loop does not read itself; None: not known here."""
        q = _quote(text)[1:-1].encode()
        if self.one_buf is None:
            self.one_buf = ctypes.create_string_buffer(1 << 12)
        while True:
            n = self.lib.xl_one(self.ctx, lin, q, len(q), self.one_buf, len(self.one_buf))
            if n >= 0:
                return None if n == 0 else self.one_buf.raw[:n - len(self.sep)].decode()
            self.one_buf = ctypes.create_string_buffer(2 * len(self.one_buf))

    def __del__(self):
        if getattr(self, "ctx", None):
            self.lib.xl_free(self.ctx)
            self.ctx = None

    def write(self, data: bytes, rejected, write, started: bool) -> bool:
        """Answer one block of ASCII address lines (blank lines and # comments skipped), each
        line as JsonLines.line() gives it, through `write(bytes)` (once per block, or per
        `_OUT` bytes): JSON lines, or (sep ",\n") the inside of a JSON list, "[\n" before its
        first line (when not `started`) and ",\n" between lines. A rejected input goes to
        `rejected(text, error)`. Returns whether a line has been written, by now."""
        lib, ctx, pos, outlen, out = self.lib, self.ctx, self.pos, self.outlen, self.out
        pos.value, outlen.value, n = 0, 0, len(data)
        while True:
            rc = lib.xl_run(ctx, data, n, ctypes.byref(pos), out, _OUT, ctypes.byref(outlen))
            if rc == _MISS:
                end = data.find(b"\n", pos.value)
                end = n if end < 0 else end
                line = self._python_line(data[pos.value:end].decode("ascii").strip(), rejected)
                pos.value = end + 1
                if line is None:
                    continue
                line = (line + self.sep).encode()
                if outlen.value + len(line) <= _OUT:       # after the loop's lines, in place
                    ctypes.memmove(ctypes.addressof(out) + outlen.value, line, len(line))
                    outlen.value += len(line)
                    continue
                started = self._put(write, self.view[:outlen.value], started)
                outlen.value = 0
                started = self._put(write, memoryview(line), started)
            elif outlen.value:
                started = self._put(write, self.view[:outlen.value], started)
                outlen.value = 0
            if rc == _DONE:
                return started

    def _put(self, write, lines, started: bool) -> bool:
        """Write lines each followed by the separator: JSON lines as they are; a JSON list's
        with its opening or the separator before them instead of after."""
        if not lines:
            return started
        if self.sep != "\n":
            write(b",\n" if started else b"[\n")
            lines = lines[:-2]
        write(lines)
        return True

    def _python_line(self, text: str, rejected) -> str | None:
        """`text`'s line (None: rejected): the loop's own when it knows the address (an input it
        does not read itself), else JsonLines.line()'s, whose answer is then handed to the loop."""
        try:
            lin = int(text, 0)
        except ValueError:
            lin = -1
        if 0 <= lin <= self.render.limit and self.lib.xl_known(self.ctx, lin):
            return self.one(lin, text)
        try:
            line = self.render.line(text, ask_native=False)
        except TranslateError as e:
            rejected(text, e)
            return None
        if 0 <= lin <= self.render.limit:
            self._hand_over(lin)
        return line

    def _hand_over(self, lin: int) -> None:
        answer = self.render.shared_answer(lin, self.runs)
        if answer is None:
            return
        self.answers += 1
        if self.answers > _BOUND:
            self.lib.xl_clear(self.ctx)
            self.answers = 1
        is_page, spans, mask, phys, tmpl, stretches, run = answer
        (lo, hi), rest = spans[0], spans[1:]
        meta, texts, end = b"", b"", 0
        if stretches:
            packed = []
            for start, text, sym, at in stretches:
                end += len(text)
                packed += (start, at, sym, end)
            meta, texts = struct.pack(f"{len(packed)}Q", *packed), "".join(s[1] for s in stretches).encode()
        if self.lib.xl_add(self.ctx, is_page, lo, hi, mask, phys, tmpl.encode(), len(tmpl), len(stretches), meta, texts):
            return
        if run is None:
            return
        if any(self.lib.xl_span(self.ctx, a, b) for a, b in rest):
            self.runs = False           # (an overlap: never here) from then on one walk at a time
        sh, kmask, base, pids, *more = run        # (a record's template, (a stack's start mask, end))
        rec = more[0].encode() if more else b""
        if self.lib.xl_hole(self.ctx, sh, kmask, base, len(pids), (ctypes.c_int64 * len(pids))(*pids), rec, len(rec)):
            raise MemoryError("translate: the compiled loop's hole table")
        if len(more) == 3:
            self.lib.xl_stack(self.ctx, more[1], more[2])


def native_lines(render: JsonLines, sep: str) -> NativeLines | None:
    """The compiled loop for `render` (a predicted address space), or None: no C compiler, or
    an address space whose answers are not cached per page (a live process)."""
    if not render.fast:
        return None
    lib = _library()
    loop = None if lib is None else NativeLines(lib, render, sep)
    return loop if loop is not None and loop.ctx else None
