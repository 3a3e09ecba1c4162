"""Exact mode's references collected natively: elfvm/emu/exactrefs.c as Unicorn's hooks.

`--exact-tlb` makes every instruction fetch and data access a reference of the paging model.
The C callbacks append the references to pages Python has marked fast straight into the
batch (`state.RefBatch`) the model takes in one call, and call the Python hooks of
`elfvm.emu.entry` for everything else, exactly as Unicorn would have; so the model sees the
same references in the same order, only without a Python call for most of them. The library
is compiled once with the system's C compiler (`elfvm.host.native.build`, into the cache
directory); without one the Python hooks are installed directly (the same figures, slower).

With `--emit-trace` every reference is written out by Python, so the native hooks are not used.
"""

from __future__ import annotations

import ctypes
import os

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exactrefs.c")
F_READ, F_WRITE = 1, 2


class _Header(ctypes.Structure):
    _fields_ = [("count", ctypes.c_void_p), ("cap", ctypes.c_int64), ("procs", ctypes.c_void_p),
                ("vpns", ctypes.c_void_p), ("flags", ctypes.c_void_p), ("mi", ctypes.c_int64),
                ("task_size", ctypes.c_uint64), ("code_slow", ctypes.c_void_p),
                ("mem_slow", ctypes.c_void_p), ("fast", ctypes.c_int64)]


class FastRefs:
    """The native hooks' state: which pages are fast, the frame -> page map of the CPU's TLB,
    the batch arrays they append to and the Python hooks they defer to."""

    def __init__(self, lib: ctypes.CDLL, batch, code_slow, mem_slow):
        lib.fast_struct_size.restype = ctypes.c_long
        self.buf = ctypes.create_string_buffer(lib.fast_struct_size())
        self.data = ctypes.c_void_p(ctypes.addressof(self.buf))
        h = self.head = _Header.from_buffer(self.buf)
        self.batch = batch                       # its arrays must live as long as the hooks
        # one slot short of full: RefBatch.add (Python) always has room for one more
        h.count, h.cap = batch.count.ctypes.data, len(batch.vpns) - 1
        h.procs, h.vpns, h.flags = batch.procs.ctypes.data, batch.vpns.ctypes.data, batch.flags.ctypes.data
        h.mi = -1
        self._slow = (code_slow, mem_slow)       # ctypes callbacks: kept alive here
        h.code_slow = ctypes.cast(code_slow, ctypes.c_void_p).value
        h.mem_slow = ctypes.cast(mem_slow, ctypes.c_void_p).value
        self._forget = lib.fast_forget
        self._forget.argtypes = [ctypes.c_void_p]
        self._allow = lib.fast_allow
        self._allow.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32,
                                ctypes.c_uint32]
        self._phys = lib.fast_phys
        self._phys.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32]
        self.hooks: list = []                    # Unicorn's handles of the two hooks
        self.code = ctypes.cast(lib.fast_code, ctypes.c_void_p).value
        self.mem = ctypes.cast(lib.fast_mem, ctypes.c_void_p).value
        self.forget()

    def forget(self) -> None:
        """No page is fast any more (a TLB flush, a fault left pending, a deferred eviction)."""
        self._forget(self.data)

    def allow(self, mi: int, task_size: int, vpn: int, writable: bool) -> None:
        """Page `vpn` of process `mi` is fast: its next references only go to the batch."""
        self._allow(self.data, mi, task_size, vpn, F_READ | (F_WRITE if writable else 0))

    def refill(self, mi: int, task_size: int, vpn: int) -> None:
        """The CPU's TLB (re)filled `vpn`: Python sees its next reference again."""
        self._allow(self.data, mi, task_size, vpn, 0)

    def phys(self, frame: int, vpn: int) -> None:
        """The CPU's TLB maps physical address `frame` to page `vpn`."""
        self._phys(self.data, frame >> 12, vpn)

    @property
    def fast_references(self) -> int:
        return self.head.fast


def build() -> str | None:
    """Compile exactrefs.c unless it is compiled already: the library's path, or None."""
    from elfvm.host.native import build as compile_once

    return compile_once(_SRC)


def install(uc, batch, code_hook, mem_hook) -> FastRefs | None:
    """Install the native exact-mode hooks on `uc`, deferring to the Python hooks
    `code_hook(uc, addr, size, data)` and `mem_hook(uc, type, addr, size, value, data)`; None
    (nothing installed) without a C compiler."""
    from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UcError
    from unicorn.unicorn_py3 import unicorn as U

    from elfvm.host.native import load_library

    lib = load_library(build())
    if lib is None:
        return None
    # Unicorn's own wrapper: an exception in a hook stops the CPU and is raised by emu_start
    code_slow = U.uccallback(uc, U.HOOK_CODE_CFUNC)(code_hook)
    mem_slow = U.uccallback(uc, U.HOOK_MEM_ACCESS_CFUNC)(mem_hook)
    fast = FastRefs(lib, batch, code_slow, mem_slow)
    for kind, address in ((UC_HOOK_CODE, fast.code), (UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, fast.mem)):
        h = U.uc_hook_h()
        err = U.uclib.uc_hook_add(uc._uch, ctypes.byref(h), kind, ctypes.c_void_p(address),
                                  fast.data, ctypes.c_uint64(1), ctypes.c_uint64(0))
        if err:
            raise UcError(err)
        fast.hooks.append(h)
    return fast
