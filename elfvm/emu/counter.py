"""Counting the guest's instructions natively: Python never runs per instruction or per block.

The counter is elfvm/emu/icount.c, a UC_HOOK_BLOCK callback compiled once with the system's C
compiler into the user's cache directory (named by a hash of its source, as the trace engine's
ahead-of-time library is) and loaded with ctypes: no numba import on the command's path, and a
callback per translated block instead of per instruction (a UC_HOOK_CODE hook makes Unicorn run
~3.5x slower). Each block adds the instruction count of Unicorn's translation of it. A block the
CPU leaves early (a fault or an exception inside it, a stop request from a hook) counted
instructions that did not run: `BlockCounter.settle` takes them back, so the count is the
instructions that executed, a faulting one included (as the kernel's fault handler sees it: the
instruction was fetched and began).

Without a C compiler, `instruction_hook` falls back to a numba cfunc per instruction (the same
count, slower, and numba's import); without either, instructions are not counted.
"""

from __future__ import annotations

import ctypes
import os

from elfvm.host import native
from elfvm.host.native import load_library

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "icount.c")


class _Header(ctypes.Structure):
    _fields_ = [("total", ctypes.c_int64), ("last_pc", ctypes.c_uint64), ("last_size", ctypes.c_int64),
                ("last_icount", ctypes.c_int64), ("ctl", ctypes.c_void_p), ("request", ctypes.c_int64),
                ("errors", ctypes.c_int64)]


def library_path() -> str:
    """Where icount.c is compiled to (elfvm.host.native)."""
    return native.library_path(_SRC)


def build() -> str | None:
    """Compile icount.c unless it is compiled already: the library's path, or None."""
    return native.build(_SRC)


class BlockCounter:
    """The compiled counter of one Unicorn instance: its callback's address, its state."""

    def __init__(self, lib: ctypes.CDLL, uclib, request: int):
        self.lib = lib
        lib.icount_struct_size.restype = ctypes.c_long
        self.buf = ctypes.create_string_buffer(lib.icount_struct_size())
        self.head = _Header.from_buffer(self.buf)
        self.head.ctl = ctypes.cast(uclib.uc_ctl, ctypes.c_void_p).value
        self.head.request = request
        self.callback = ctypes.cast(lib.icount_block, ctypes.c_void_p).value
        self.data = ctypes.addressof(self.buf)

    @property
    def total(self) -> int:
        return self.head.total

    def clear(self) -> None:
        """Forget the blocks' instruction counts: the code at their addresses may change."""
        self.lib.icount_clear(ctypes.c_void_p(self.data))

    def settle(self, uc, eip: int, started: bool) -> None:
        """The CPU stopped at `eip`: if that is inside the block entered last, its instructions
        from eip on did not run (but the one at eip did when `started`: it faulted)."""
        h = self.head
        pc, end = h.last_pc, h.last_pc + h.last_size
        h.last_size = 0
        if pc <= eip < end:
            from unicorn import UcError

            try:
                h.total -= instructions_between(uc, eip, end) - int(started)
            except UcError:            # pragma: no cover - the block's code is gone
                h.errors += 1


def instructions_between(uc, start: int, end: int, depth: int = 0) -> int:
    """Instructions from `start` (an instruction's address) to `end` (where a block ends), by
    Unicorn's translation of the code at `start`."""
    _pc, icount, size = uc.ctl_request_cache(start)
    stop = start + size
    if stop == end or depth > 8 or size == 0:
        return icount
    if stop > end:
        return icount - instructions_between(uc, end, stop, depth + 1)
    return icount + instructions_between(uc, stop, end, depth + 1)


def block_counter(uc) -> BlockCounter | None:
    """The compiled block counter for `uc`, or None without a C compiler."""
    from unicorn.unicorn_const import UC_CTL_IO_READ_WRITE, UC_CTL_TB_REQUEST_CACHE
    from unicorn.unicorn_py3 import unicorn as U

    lib = load_library(build())
    if lib is None:
        return None
    request = (UC_CTL_IO_READ_WRITE << 30) | (2 << 26) | UC_CTL_TB_REQUEST_CACHE
    return BlockCounter(lib, U.uclib, request)


def numba_instruction_hook():
    """The fallback: a numba cfunc per instruction counting into an int64 array, or None."""
    try:
        from elfvm.emu.counter_numba import count_cb
    except ImportError:                      # pragma: no cover
        return None
    return count_cb
