"""The host page cache's folio layout of a file, read from the live kernel.

Linux 6.18's fault-around maps whole page-cache folios, and how big those are depends on how the
file entered the page cache (readahead, buffered writes, the filesystem's large-folio support), so
`simulate-run --page-cache live` asks the running kernel: mmap the file read-only (MAP_SHARED, so
the PTEs point at the page-cache pages themselves), mincore() for the cached pages, touch only
those (MADV_RANDOM first: no readahead, the cache is left as it was), then the PFN of each from
/proc/self/pagemap and its flags from /proc/kpageflags: KPF_COMPOUND_HEAD starts a large folio,
the KPF_COMPOUND_TAIL pages after it belong to it (Documentation/admin-guide/mm/pagemap.rst).
Both PFNs and kpageflags need CAP_SYS_ADMIN (root).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
from dataclasses import dataclass

from elfvm.host.procfs import read_pagemap
from elfvm.units import PAGE_SIZE

KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL = 15, 16
MADV_RANDOM = 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


class PageCacheUnreadable(OSError):
    """The live page cache cannot be read here (not root, no /proc/kpageflags, ...)."""


@dataclass(frozen=True)
class FolioLayout:
    """The folios of one file's cached pages: `heads` maps the file index of each large folio's
    first page to its page count. Pages not in it (small folios, or not cached) are one page."""

    npages: int
    cached: int                       # pages resident in the page cache when read
    heads: dict

    def folio_of(self, index: int) -> tuple[int, int]:
        """(first index, pages) of the folio holding page `index`."""
        for order in range(0, 10):                 # folios are naturally aligned, at most 2 MiB
            start = index & ~((1 << order) - 1)
            n = self.heads.get(start)
            if n is not None and start + n > index:
                return start, n
        return index, 1


def check_readable() -> None:
    """Raise PageCacheUnreadable unless this process can read /proc/kpageflags and PFNs in
    /proc/self/pagemap (both need CAP_SYS_ADMIN; without it pagemap reads PFN 0)."""
    try:
        with open("/proc/kpageflags", "rb") as f:
            f.read(8)
    except OSError as e:
        raise PageCacheUnreadable(f"/proc/kpageflags: {e.strerror} (reading the live page cache "
                                  f"needs root)") from None
    probe = mmap.mmap(-1, PAGE_SIZE)
    try:
        probe[0] = 1                                        # a present anonymous page
        addr = ctypes.addressof(ctypes.c_char.from_buffer(probe))
        try:
            pfn = read_pagemap(os.getpid(), addr, addr + PAGE_SIZE)[0].pfn
        except OSError as e:
            raise PageCacheUnreadable(f"/proc/self/pagemap: {e.strerror}") from None
    finally:
        probe.close()
    if not pfn:
        raise PageCacheUnreadable("/proc/self/pagemap hides PFNs (reading the live page cache "
                                  "needs CAP_SYS_ADMIN: root)")


def folio_layout(path: str) -> FolioLayout:
    """The folio layout of the host file `path` as the page cache holds it now."""
    fd = os.open(path, os.O_RDONLY)
    try:
        npages = -(-os.fstat(fd).st_size // PAGE_SIZE)
        if npages == 0:
            return FolioLayout(0, 0, {})
        length = npages * PAGE_SIZE
        addr = _libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise PageCacheUnreadable(f"{path}: mmap: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
    try:
        return _read_mapped(addr, npages)
    finally:
        _libc.munmap(addr, length)


def _read_mapped(addr: int, npages: int) -> FolioLayout:
    _libc.madvise(addr, npages * PAGE_SIZE, MADV_RANDOM)     # a fault reads no more than its page
    vec = (ctypes.c_ubyte * npages)()
    if _libc.mincore(addr, npages * PAGE_SIZE, vec) != 0:
        raise PageCacheUnreadable(f"mincore: {os.strerror(ctypes.get_errno())}")
    cached = [i for i in range(npages) if vec[i] & 1]
    for i in cached:                                         # map them (already cached: no I/O)
        ctypes.c_ubyte.from_address(addr + i * PAGE_SIZE).value
    entries = read_pagemap(os.getpid(), addr, addr + npages * PAGE_SIZE)
    pfns = {i: entries[i].pfn for i in cached if entries[i].present and entries[i].pfn}
    if cached and not pfns:
        raise PageCacheUnreadable("/proc/self/pagemap gives no PFNs (reading the live page cache "
                                  "needs root)")
    flags = _kpageflags(pfns.values())
    return FolioLayout(npages, len(cached), _heads(pfns, flags))


def _kpageflags(pfns) -> dict:
    out = {}
    try:
        with open("/proc/kpageflags", "rb", buffering=0) as f:
            for pfn in pfns:
                out[pfn] = struct.unpack("<Q", os.pread(f.fileno(), 8, pfn * 8))[0]
    except OSError as e:
        raise PageCacheUnreadable(f"/proc/kpageflags: {e.strerror} (reading the live page cache "
                                  f"needs root)") from None
    return out


def _heads(pfns: dict, flags: dict) -> dict:
    """Large folios: a compound head at index i, then tails at i+1, i+2 ... with PFNs pfn+1, pfn+2."""
    heads = {}
    for i, pfn in pfns.items():
        if not flags.get(pfn, 0) >> KPF_COMPOUND_HEAD & 1:
            continue
        n = 1
        while pfns.get(i + n) == pfn + n and flags.get(pfn + n, 0) >> KPF_COMPOUND_TAIL & 1:
            n += 1
        if n > 1:
            heads[i] = n
    return heads
