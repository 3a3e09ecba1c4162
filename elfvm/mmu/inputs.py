"""Reading the addresses `translate` is asked about: numbers, SELECTOR:OFFSET, symbols.

* a number: ``0x8049000`` or ``134516736`` (Python's int(x, 0) rules)
* a logical address: ``0x23:0x8049000``, ``gs:0x14``, ``ds:counter`` (selector or segment
  register, then an offset or a symbol)
* a symbol of the program (``main``, ``counter``, ``table+0x10``), relocated by the load bias; a
  ``__thread`` symbol resolves to its logical address ``gs:-offset`` (i386 TLS variant II: the
  block lies below the thread pointer that glibc loads into %gs)
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Iterator

from elfvm.errors import UsageError
from elfvm.mmu.mmu import TranslateError

_IDENT = re.compile(r"[A-Za-z_.$][\w.$@]*")


@dataclass(frozen=True)
class Spec:
    """One input, read: a plain (linear) address, or a selector (or register) and an offset."""

    text: str
    linear: int | None = None            # a plain address
    selector: int | None = None          # a logical address
    register: str | None = None
    offset: int | None = None


def parse_number(text: str) -> int:
    t = text.strip()
    try:
        v = int(t, 0)
    except ValueError:
        raise TranslateError(f"{text!r}: not a number (use 0x... for hex)") from None
    if v < 0:
        raise TranslateError(f"{text!r}: negative address")
    return v


def resolve_symbol(name: str, images: dict, *, allow_tls: bool = True):
    """(address, None) for an ordinary symbol, (None, gs offset) for a TLS symbol."""
    m = re.fullmatch(r"([^+\-]+)(?:([+\-])(\w+))?", name)
    if not m or not _IDENT.fullmatch(m.group(1)):
        raise TranslateError(f"{name!r}: not a number, selector:offset or symbol name")
    base, sign, add = m.group(1), m.group(2), m.group(3)
    extra = 0
    if add:
        extra = parse_number(add) * (-1 if sign == "-" else 1)
    if not images:
        raise TranslateError(f"{name!r}: symbols need --elf PROGRAM (or --pid)")
    for key in ("main", "interp"):
        im = images.get(key)
        if im is None:
            continue
        s = im.lookup(base)
        if s is None:
            continue
        if s.kind == "STT_TLS":
            off = im.tls_offset() if key == "main" else None
            if off is None or not allow_tls:
                raise TranslateError(f"{name!r}: a __thread symbol of {key} that elfvm cannot place")
            return None, (s.value - off + extra) & 0xFFFFFFFF
        return (s.value + im.bias + extra) & 0xFFFFFFFF, None
    raise TranslateError(f"{name!r}: unknown symbol (not in the symbol table of "
                         f"{', '.join(im.path for im in images.values())})")


def parse_spec(text: str, images: dict, registers: dict) -> Spec:
    t = text.strip()
    if not t:
        raise TranslateError("empty address")
    if ":" in t:
        from elfvm.mmu.segmentation import SEGMENT_REGISTERS

        left, _, right = t.partition(":")
        left, right = left.strip(), right.strip()
        reg = None
        if left.lower() in SEGMENT_REGISTERS:
            reg = left.lower()
            if reg not in registers:
                raise TranslateError(f"{text!r}: the value of %{reg} is not known")
            sel = registers[reg]
        else:
            try:
                sel = int(left, 0)
            except ValueError:
                raise TranslateError(f"{text!r}: malformed selector {left!r} (a 16-bit number or "
                                     f"cs/ds/es/fs/gs/ss)") from None
            if not 0 <= sel <= 0xFFFF:
                raise TranslateError(f"{text!r}: selector {left} does not fit 16 bits")
        if not right:
            raise TranslateError(f"{text!r}: missing offset after ':'")
        try:
            off = int(right, 0)
        except ValueError:
            addr, tls = resolve_symbol(right, images, allow_tls=False)
            off = addr
        if not 0 <= off <= 0xFFFFFFFF:
            raise TranslateError(f"{text!r}: offset {right} does not fit 32 bits")
        return Spec(t, selector=sel, register=reg, offset=off)
    try:
        return Spec(t, linear=parse_number(t))
    except TranslateError:
        if t[:1].isdigit() or t[:1] == "-":
            raise
    addr, tls = resolve_symbol(t, images)
    if tls is not None:
        return Spec(t, selector=registers.get("gs", 0), register="gs", offset=tls)
    return Spec(t, linear=addr)


MAX_LINE = 1 << 16       # the longest address line read (an endless line is an error, not a heap)


def read_address_lines(path: str) -> Iterator[str]:
    """The addresses of FILE ('-': stdin), one per line, as they are read (blank lines and
    `#` comments skipped). See read_address_chunks."""
    for chunk in read_address_chunks(path):
        yield from chunk


def read_address_chunks(path: str, size: int = 1 << 16, ascii_bytes: bool = False) -> Iterator[list[str] | bytes]:
    """The addresses of FILE ('-': stdin) in lists, one list per block read (whatever a pipe
    holds, so answers can follow the input as it comes), blank lines and `#` comments skipped.
    A line longer than MAX_LINE or not UTF-8 is a one-line UsageError naming it; nothing is held
    beyond the current block and line. With `ascii_bytes`, a block that is all ASCII comes as
    its bytes instead (the lines, newline-separated), for a caller that reads lines itself by
    the same rules (str.strip(), blank lines and comments skipped)."""
    name = "<stdin>" if path == "-" else path
    for data, n in _read_blocks(path, name, size):
        if ascii_bytes and data.isascii():
            yield data
        else:
            yield from _address_texts(data.split(b"\n"), name, n)


def _read_blocks(path: str, name: str, size: int) -> Iterator[tuple[bytes, int]]:
    """(the complete lines of each block read, newline-separated, without the last newline;
    how many lines came before), the unterminated last line at the end."""
    try:
        f = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as e:
        raise UsageError(f"--addresses {path}: {e.strerror}") from None
    try:
        n, rest = 0, b""
        while True:
            try:
                block = f.read1(size)
            except OSError as e:
                raise UsageError(f"--addresses {path}: {e.strerror}") from None
            data = rest + block
            if block:
                cut = data.rfind(b"\n") + 1
                data, rest = data[:max(cut - 1, 0)], data[cut:]
                k = data.count(b"\n") + 1 if cut else 0
            else:
                rest, k = b"", 1
            if len(rest) > MAX_LINE:
                raise UsageError(f"--addresses {name}:{n + k + 1}: a line longer than {MAX_LINE} "
                                 f"bytes without a newline")
            if k:
                yield data, n
                n += k
            if not block:
                return
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _address_texts(raws: list[bytes], name: str, n: int) -> Iterator[list[str]]:
    """Lines n+1... of a block as text, blank lines and comments dropped; the lines before one
    that is not UTF-8 come out before its error."""
    try:
        texts = b"\n".join(raws).decode("utf-8").split("\n")
    except UnicodeDecodeError:
        for i, raw in enumerate(raws):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                yield from _address_texts(raws[:i], name, n)
                shown = (raw + b"\n")[:40]
                raise UsageError(f"--addresses {name}:{n + i + 1}: not UTF-8 text: {shown!r}") from None
        raise
    texts = [t.strip() for t in texts]
    yield [t for t in texts if t and t[0] != "#"]
