"""Physical memory of the emulated machine: frames and their contents.

The frames' bytes live in Unicorn's physical address space (RAM mapped at physical 0), so the
CPU reads and writes them through the TLB that elfvm fills; elfvm's own page tables (the MMU
model of elfvm.mmu) get the real PDE/PTE values for every mapping, in a separate store of the
same physical address space (frames for tables come from the same allocator).

This module only holds memory: which process pages are resident, which one is evicted when
`--frames` is full, and every statistic are the trace engine's (`elfvm.sim.engine.PagingModel`),
driven by elfvm.emu.pages. A frame here can back several process pages (page cache, COW after
fork, the zero page, shared memory), exactly as the kernel shares `struct page`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from elfvm.phys import FrameAllocator, OutOfMemory

PAGE = 4096


@dataclass
class FrameInfo:
    """struct page, as far as elfvm needs it."""

    addr: int
    what: str
    rmap: set = field(default_factory=set)        # {(pid, vpn)} mapping it
    cache_key: tuple | None = None                 # (file key, page index) in the page cache
    anon: bool = False
    pinned: bool = False                           # zero page, kernel pages: never freed


class OutOfFrames(Exception):
    pass


class Frames:
    """The physical frames of --ram, handed to user pages, page tables and kernel pages."""

    def __init__(self, uc, ram: int):
        self.uc = uc
        self.ram = ram
        self.alloc_phys = FrameAllocator(ram)
        self.free_list: list[int] = []
        self.info: dict[int, FrameInfo] = {}
        uc.mem_map(0, ram)

    # --- allocation ----------------------------------------------------------------------
    def raw_alloc(self, what: str, kind: str = "user") -> int:
        if self.free_list:
            return self.free_list.pop()
        try:
            return self.alloc_phys.alloc(what, kind)
        except OutOfMemory:
            raise OutOfFrames(f"no free frame in {self.ram >> 20} MiB of RAM") from None

    def new(self, what: str, *, anon: bool, pinned: bool = False, cache_key=None) -> FrameInfo:
        fi = FrameInfo(self.raw_alloc(what), what, cache_key=cache_key, anon=anon, pinned=pinned)
        self.info[fi.addr] = fi
        return fi

    def release(self, fi: FrameInfo) -> None:
        if fi.addr in self.info:
            del self.info[fi.addr]
            self.free_list.append(fi.addr)

    # --- contents ------------------------------------------------------------------------
    def write(self, addr: int, data: bytes) -> None:
        """Through Unicorn, so translated code on that frame is invalidated too."""
        self.uc.mem_write(addr, bytes(data))

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.uc.mem_read(addr, n))

    def fill(self, addr: int, data: bytes) -> None:
        """A whole page: data then zeros."""
        self.write(addr, data[:PAGE] + bytes(PAGE - min(len(data), PAGE)))

    def copy(self, dst: int, src: int) -> None:
        self.write(dst, self.read(src, PAGE))
