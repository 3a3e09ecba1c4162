"""Physical memory of the emulated machine: frames, the page cache, swap and replacement.

The frames' bytes live in Unicorn's physical address space (RAM mapped at physical 0), so the
CPU reads and writes them through the TLB that elfvm fills; elfvm's own page tables (the MMU
model of elfvm.mmu) get the real PDE/PTE values for every mapping, in a separate store of the
same physical address space (frames for tables come from the same allocator).

`MemorySystem` is the small interface the emulator needs from a memory model; `Frames` is the
implementation used until the trace engine (elfvm.sim) exposes a per-fault API: it counts
resident frames against `--frames`, picks victims FIFO / LRU / clock (recency from TLB fills:
the emulator sees page-granular events, not every access), writes dirty anonymous pages to a
swap area and drops clean file pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from elfvm.phys import FrameAllocator, OutOfMemory

PAGE = 4096


class MemorySystem(Protocol):
    """What the emulator asks of a memory model (the trace engine can implement this)."""

    def alloc(self, what: str) -> int: ...          # a free frame (may evict), physical address
    def free(self, frame: int) -> None: ...
    def touch(self, frame: int, write: bool) -> None: ...   # a TLB fill / fault on the frame


@dataclass
class FrameInfo:
    """struct page, as far as elfvm needs it."""

    addr: int
    what: str
    rmap: set = field(default_factory=set)        # {(pid, vpn)} mapping it
    cache_key: tuple | None = None                 # (file key, page index) in the page cache
    anon: bool = False
    pinned: bool = False                           # zero page, kernel pages: never evicted
    loaded: int = 0                                # load sequence (FIFO)
    used: int = 0                                  # last fill/fault sequence (LRU)
    referenced: bool = True                        # clock's bit


class OutOfFrames(Exception):
    pass


class Frames:
    """Frames of RAM handed to user pages, with a limit and a replacement policy."""

    def __init__(self, uc, ram: int, limit: int | None, policy: str = "fifo"):
        self.uc = uc
        self.ram = ram
        self.alloc_phys = FrameAllocator(ram)
        self.free_list: list[int] = []
        self.info: dict[int, FrameInfo] = {}
        self.limit = limit
        self.policy = policy
        self.seq = 0
        self.hand = 0
        self.user_frames = 0
        self.peak = 0
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
        """A frame for a user page; the caller evicts first when `full`."""
        addr = self.raw_alloc(what)
        self.seq += 1
        fi = FrameInfo(addr, what, cache_key=cache_key, anon=anon, pinned=pinned, loaded=self.seq,
                       used=self.seq)
        self.info[addr] = fi
        if not pinned:
            self.user_frames += 1
            self.peak = max(self.peak, self.user_frames)
        return fi

    @property
    def full(self) -> bool:
        return self.limit is not None and self.user_frames >= self.limit

    def release(self, fi: FrameInfo) -> None:
        if fi.addr in self.info:
            del self.info[fi.addr]
            if not fi.pinned:
                self.user_frames -= 1
            self.free_list.append(fi.addr)

    def touch(self, frame: int) -> None:
        fi = self.info.get(frame)
        if fi is not None:
            self.seq += 1
            fi.used = self.seq
            fi.referenced = True

    def victim(self, exclude=frozenset()) -> FrameInfo | None:
        """The frame the policy evicts (FIFO: loaded earliest; LRU: used least recently;
        clock: second chance in frame order). `exclude`: frames the current instruction is
        using (the CPU holds them between its TLB fills, as a real MMU holds the pages of one
        instruction)."""
        cands = [f for f in self.info.values() if not f.pinned and f.addr not in exclude]
        if not cands:
            return None
        if self.policy == "lru":
            return min(cands, key=lambda f: (f.used, f.addr))
        if self.policy == "clock":
            cands.sort(key=lambda f: f.addr)
            n = len(cands)
            start = next((i for i, f in enumerate(cands) if f.addr >= self.hand), 0)
            for step in range(2 * n + 1):
                f = cands[(start + step) % n]
                if f.referenced:
                    f.referenced = False
                    continue
                self.hand = f.addr + PAGE
                return f
        return min(cands, key=lambda f: (f.loaded, f.addr))

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
