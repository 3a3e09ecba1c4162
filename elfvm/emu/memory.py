"""Physical memory of the emulated machine: frames and their contents.

One physical memory (elfvm.phys.MappedMemory): Unicorn maps it as its RAM at physical 0, so the
CPU reads and writes frames through the TLB that elfvm fills, and the MMU model's page tables
(elfvm.mmu.paging.PageTables, one set per process) live in frames of the same memory, handed
out by the same allocator. A frame number is a frame number, whoever prints it.

This module only holds memory: which process pages are resident, which one is evicted when
`--frames` is full, and every statistic are the trace engine's (`elfvm.sim.engine.PagingModel`),
driven by elfvm.emu.pages. A frame here can back several process pages (page cache, COW after
fork, the zero page, shared memory), exactly as the kernel shares `struct page`s.
"""


from dataclasses import dataclass, field

from unicorn import UC_PROT_ALL

from elfvm.phys import FrameAllocator, MappedMemory, OutOfMemory
from elfvm.units import PAGE_SIZE

PAGE = PAGE_SIZE


@dataclass(repr=False, eq=False)
class FrameInfo:
    """struct page, as far as elfvm needs it."""

    addr: int
    what: str
    rmap: set = field(default_factory=set)        # {(pid, vpn)} mapping it
    cache_key: tuple | None = None                 # (file key, page index) in the page cache
    anon: bool = False
    pinned: bool = False                           # zero page, kernel pages: never freed


def _page(data: bytes) -> bytes:
    """`data` as one whole page: cut at PAGE, zeros after it."""
    n = len(data)
    return data if n == PAGE else data[:PAGE] + bytes(PAGE - min(n, PAGE))


class OutOfFrames(Exception):
    pass


class Frames:
    """The physical frames of --ram, handed to user pages, page tables and kernel pages by the
    machine's one allocator (elfvm.phys.FrameAllocator, built as `translate` builds it: the
    same exec image gets the same frames); `info` is struct page for the frames in use."""

    def __init__(self, uc, mem: MappedMemory, phys: FrameAllocator):
        self.uc = uc
        self.mem = mem
        self.ram = mem.size
        self.phys = phys
        self.info: dict[int, FrameInfo] = {}
        uc.mem_map_ptr(0, mem.size, UC_PROT_ALL, mem.address)

    # --- allocation ----------------------------------------------------------------------
    def alloc(self, what: str, kind: str = "kernel", frames: int = 1) -> int:
        """One frame (user pages; pgd_alloc, pte_alloc for the page tables)."""
        if frames != 1:
            raise OutOfFrames(f"{what}: {frames} contiguous frames for one table")
        try:
            return self.phys.alloc(what, kind)
        except OutOfMemory:
            raise OutOfFrames(f"no free frame in {self.ram >> 20} MiB of RAM") from None

    def free(self, addr: int) -> None:
        """A frame given back (a page table at free_pgtables, a page nobody maps)."""
        self.phys.free(addr)

    def kernel_page(self, what: str, addr: int) -> FrameInfo:
        """A page of the kernel image (never allocated, never freed): the zero page in its bss,
        the GDT in its data, the entry code in its text."""
        fi = FrameInfo(addr, what, pinned=True)
        self.info[addr] = fi
        return fi

    def new(self, what: str, *, anon: bool, pinned: bool = False, cache_key=None) -> FrameInfo:
        fi = FrameInfo(self.alloc(what, "user"), what, cache_key=cache_key, anon=anon, pinned=pinned)
        self.info[fi.addr] = fi
        return fi

    def new_many(self, whats: list[str], cache_keys: list, got: list, *, anon: bool = False) -> None:
        """new() of several frames, one after another (fault-around's page-cache pages):
        (address, fresh: next_is_fresh() before it) appended to `got` for each frame taken,
        also when RAM runs out half-way (the caller sees the frames taken before)."""
        reused = min(len(self.phys.free_list), len(whats))    # alloc_many takes these first
        addrs: list[int] = []
        try:
            self.phys.alloc_many(whats, "user", addrs)
        except OutOfMemory:
            raise OutOfFrames(f"no free frame in {self.ram >> 20} MiB of RAM") from None
        finally:
            info = self.info
            for n, (addr, what, key) in enumerate(zip(addrs, whats, cache_keys)):
                info[addr] = FrameInfo(addr, what, cache_key=key, anon=anon)
                got.append((addr, n >= reused))

    def new_zeroed(self, what: str, *, anon: bool, pinned: bool = False, cache_key=None) -> FrameInfo:
        """new() holding zeros: a frame never handed out before holds them already (the host
        commits its page when it is first written); a reused one is cleared."""
        fresh = self.next_is_fresh()
        fi = self.new(what, anon=anon, pinned=pinned, cache_key=cache_key)
        if not fresh:
            self.fill(fi.addr, b"")
        return fi

    def next_is_fresh(self) -> bool:
        """Is the frame the next new() takes one never handed out before (no freed frame waits
        to be reused)? Such a frame holds zeros, and no code translated from it."""
        return not self.phys.free_list

    def fresh_buffer(self, addr: int, n: int) -> memoryview:
        """Frames [addr, addr+n) never handed out before, as a writable view of RAM: filled in
        place (a file read straight into them). Unicorn has translated no code there, so
        nothing needs invalidating (every other write goes through Unicorn: `write`)."""
        return self.mem.buffer(addr, n)

    def release(self, fi: FrameInfo) -> None:
        if fi.addr in self.info:
            del self.info[fi.addr]
            self.free(fi.addr)

    # --- contents ------------------------------------------------------------------------
    def write(self, addr: int, data: bytes) -> None:
        """Through Unicorn, so translated code on that frame is invalidated too."""
        self.uc.mem_write(addr, bytes(data))

    def read(self, addr: int, n: int) -> bytes:
        return self.mem.read(addr, n)

    def fill(self, addr: int, data: bytes) -> None:
        """A whole page: data then zeros."""
        self.write(addr, _page(data))

    def copy(self, dst: int, src: int) -> None:
        self.write(dst, self.read(src, PAGE))
