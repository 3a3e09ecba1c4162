"""Physical frames: which ranges a real x86 PC and Linux keep, and a deterministic allocator.

What is reserved, and why (see `x86_reserved_ranges`):

* ``[0, 4 KiB)`` -- the real-mode interrupt vector table (0x000-0x3ff) and the BIOS data area
  (0x400-0x4ff). arch/x86/kernel/e820.c ``trim_bios_range()`` turns page 0 into E820_TYPE_RESERVED.
* ``[4 KiB, 0x9fc00)`` -- conventional memory, but Linux >= 5.13 reserves the whole first MiB
  (arch/x86/kernel/setup.c: ``memblock_reserve(0, SZ_1M)``, "x86/setup: Always reserve the first
  1M of RAM"): the real-mode trampoline for SMP boot lives there and BIOSes corrupt it.
* ``[0x9fc00, 0xa0000)`` -- the extended BIOS data area (EBDA), ``reserve_bios_regions()``.
* ``[0xa0000, 0x100000)`` -- the ISA hole: the legacy VGA window (0xa0000-0xbffff) and the
  video/option/system BIOS ROMs (0xc0000-0xfffff). Not RAM at all.
* ``[16 MiB, 16 MiB + image)`` -- the kernel image, loaded at ``CONFIG_PHYSICAL_START = 0x1000000``
  (arch/x86/Kconfig; the default keeps ZONE_DMA, the first 16 MiB, free for ISA DMA).

Zones (include/linux/mmzone.h): ZONE_DMA is the first 16 MiB (ISA DMA reaches 24 address bits);
on a 32-bit kernel ZONE_NORMAL ends at high_memory (the end of the lowmem direct map) and
everything above is ZONE_HIGHMEM; on x86-64 ZONE_DMA32 covers 16 MiB-4 GiB.

Allocation is deterministic, not the buddy allocator's order (the live kernel's frame numbers differ
from run to run anyway): each zone hands out frames bottom-up, skipping reserved ranges; a freed
frame is handed out again first (last freed, first reused, like the per-cpu page lists). User pages
(GFP_HIGHUSER_MOVABLE) come from the highest zone that has room, kernel memory such as page tables
(GFP_KERNEL) from ZONE_NORMAL (or DMA32), falling back to lower zones like the kernel's zonelists.

`x86_frames()` is the one allocator of a machine: `translate`'s prediction and the emulator build
theirs with it, so the same exec image gets the same frames in both (one frame numbering).
"""


from dataclasses import dataclass, field

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
CONFIG_PHYSICAL_START = 0x1000000
ISA_DMA_LIMIT = 16 * MiB


@dataclass(repr=False, eq=False)
class Reserved:
    """Physical memory the allocator never hands out, and why. Each allocator builds its own
    list and only reads it: not frozen (cheaper to create at start-up)."""

    start: int
    end: int
    what: str
    why: str


@dataclass(repr=False, eq=False)
class KernelImage:
    """The kernel image in physical memory: text, read-only data, then data+bss.

    Sizes are those of a typical distribution i386 kernel (Debian 6.12 686-pae: ~10 MiB of text,
    ~4 MiB rodata, ~2 MiB data and bss): a model assumption, not read from any vmlinux.
    """

    start: int = CONFIG_PHYSICAL_START
    text: int = 10 * MiB
    rodata: int = 4 * MiB
    data: int = 2 * MiB

    @property
    def etext(self) -> int:
        return self.start + self.text

    @property
    def erodata(self) -> int:
        return self.etext + self.rodata

    @property
    def end(self) -> int:
        return self.erodata + self.data


def x86_reserved_ranges(image: KernelImage = KernelImage()) -> list[Reserved]:
    """The physical ranges no allocator may hand out, with the kernel code that reserves them."""
    return [
        Reserved(0x0, 0x1000, "real-mode IVT + BIOS data area",
                 "e820.c trim_bios_range(): page 0 is E820_TYPE_RESERVED"),
        Reserved(0x1000, 0x9FC00, "low conventional memory",
                 "setup.c: memblock_reserve(0, SZ_1M) (real-mode trampoline; since 5.13)"),
        Reserved(0x9FC00, 0xA0000, "EBDA", "reserve_bios_regions(): extended BIOS data area"),
        Reserved(0xA0000, 0x100000, "ISA hole (VGA window, option and system BIOS ROMs)",
                 "not RAM: legacy PC address map"),
        Reserved(image.start, image.etext, "kernel text", "CONFIG_PHYSICAL_START=0x1000000: _text.._etext"),
        Reserved(image.etext, image.erodata, "kernel rodata", "__start_rodata..__end_rodata"),
        Reserved(image.erodata, image.end, "kernel data+bss", "_sdata.._end"),
    ]


class OutOfMemory(Exception):
    """No free frame in any allowed zone."""


@dataclass(repr=False, eq=False)
class Zone:
    """A memory zone the allocator hands frames out of, bottom-up."""

    name: str
    start: int
    end: int
    next: int = 0            # next candidate address (bottom-up)

    def __post_init__(self):
        self.next = self.start


@dataclass(repr=False, eq=False)
class FrameAllocator:
    """Hands out frames of `frame_size` bytes from RAM [0, ram), never from reserved ranges.

    `zones` is ordered low to high; `alloc(kind)` with kind "user" prefers the highest zone,
    "kernel" prefers `kernel_zone` (ZONE_NORMAL / DMA32) and falls back downwards.
    """

    ram: int
    frame_size: int = 4096
    reserved: list[Reserved] = field(default_factory=x86_reserved_ranges)
    zones: list[Zone] = field(default_factory=list)
    kernel_zone: str = "Normal"
    allocated: dict[int, str] = field(default_factory=dict)   # single frame address -> what for
    # contiguous allocations [start, end) -> what for, as ranges: an entry per frame would cost
    # ~10 ms for the 65536 frames of a 256 MiB model at every start
    runs: list[tuple[int, int, str]] = field(default_factory=list)
    free_list: list[int] = field(default_factory=list)         # freed single frames, reused first

    def __post_init__(self):
        if not self.zones:
            self.zones = [Zone("DMA", 0, min(ISA_DMA_LIMIT, self.ram)),
                          Zone("Normal", min(ISA_DMA_LIMIT, self.ram), self.ram)]
        self.zones = [z for z in self.zones if z.end > z.start]
        self._reserved = sorted((r.start, r.end) for r in self.reserved)
        self._reserved_top = max((e for _, e in self._reserved), default=0)   # none from here up

    def zone_of(self, addr: int) -> str | None:
        for z in self.zones:
            if z.start <= addr < z.end:
                return z.name
        return None

    def reserved_at(self, addr: int) -> Reserved | None:
        for r in self.reserved:
            if r.start <= addr < r.end:
                return r
        return None

    def _fit(self, zone: Zone, size: int, align: int) -> int | None:
        addr = -(-zone.next // align) * align
        if addr >= self._reserved_top:           # above every reserved range (most frames)
            return addr if addr + size <= zone.end else None
        while addr + size <= zone.end:
            for s, e in self._reserved:          # the first reserved range in the way, if any
                if s < addr + size and addr < e:
                    addr = -(-e // align) * align
                    break
            else:
                return addr
        return None

    def alloc(self, what: str, kind: str = "user", frames: int = 1, align: int | None = None) -> int:
        """Allocate `frames` contiguous frames; returns the physical address of the first."""
        if frames == 1 and self.free_list:
            addr = self.free_list.pop()
            self.allocated[addr] = what
            return addr
        size = frames * self.frame_size
        align = align or self.frame_size
        if kind == "user":
            order = reversed(self.zones)
        else:
            names = [z.name for z in self.zones]
            k = names.index(self.kernel_zone) if self.kernel_zone in names else len(names) - 1
            order = [self.zones[i] for i in range(k, -1, -1)]
        for zone in order:
            addr = self._fit(zone, size, align)
            if addr is not None:
                zone.next = addr + size
                if frames == 1:
                    self.allocated[addr] = what
                else:
                    self.runs.append((addr, addr + size, what))
                return addr
        raise OutOfMemory(f"no {frames} free frame(s) of {self.frame_size} bytes for {what} "
                          f"({kind}) in {self.ram // MiB} MiB of RAM")

    def alloc_many(self, whats: list[str], kind: str, out: list[int]) -> None:
        """alloc() of one frame for each of `whats`, one after another: the same frames, appended
        to `out` as they are taken (a caller sees those taken before RAM ran out). Frames
        freed before come first; then, when the highest zone holds them all above every
        reserved range, the run of frames there is taken at once."""
        n = len(whats)
        while len(out) < n and self.free_list:
            addr = self.free_list.pop()
            self.allocated[addr] = whats[len(out)]
            out.append(addr)
        rest = whats[len(out):]
        if rest and kind == "user":
            zone, size = self.zones[-1], self.frame_size
            addr = -(-zone.next // size) * size
            end = addr + len(rest) * size
            if addr >= self._reserved_top and end <= zone.end:
                zone.next = end
                addrs = range(addr, end, size)
                self.allocated.update(zip(addrs, rest))
                out.extend(addrs)
                return
        for what in rest:
            out.append(self.alloc(what, kind))

    def free(self, addr: int) -> None:
        """Give one frame back (__free_page): the next single-frame allocation reuses it."""
        if self.allocated.pop(addr, None) is None and not self._free_from_run(addr):
            raise ValueError(f"frame {addr:#x} is not allocated")
        self.free_list.append(addr)

    def _free_from_run(self, addr: int) -> bool:
        """Take one frame out of a contiguous allocation (the run splits around it)."""
        for n, (start, end, what) in enumerate(self.runs):
            if start <= addr < end and not (addr - start) % self.frame_size:
                self.runs[n:n + 1] = [r for r in ((start, addr, what), (addr + self.frame_size, end, what))
                                      if r[0] < r[1]]
                return True
        return False


def x86_zones(ram: int, *, lowmem: int | None = None, headroom: int = 0) -> list[Zone]:
    """The zones of an x86 PC with `ram` bytes (include/linux/mmzone.h). `lowmem`: a native
    32-bit kernel's direct map ends there (ZONE_HIGHMEM above); None: an x86-64 kernel (ZONE_DMA32
    up to 4 GiB, ZONE_NORMAL above). `headroom` bytes of extra RAM extend the highest zone the
    RAM has, so they change no frame number below `ram` (the emulator's page cache and page
    tables beside the model's --ram)."""
    if lowmem is not None:
        zones = [Zone("DMA", 0, min(ISA_DMA_LIMIT, ram)), Zone("Normal", min(ISA_DMA_LIMIT, ram), lowmem),
                 Zone("HighMem", lowmem, ram)]
    else:
        zones = [Zone("DMA", 0, min(ISA_DMA_LIMIT, ram)), Zone("DMA32", min(ISA_DMA_LIMIT, ram), min(ram, 4 * GiB)),
                 Zone("Normal", 4 * GiB, ram)]
    zones = [z for z in zones if z.end > z.start]
    zones[-1] = Zone(zones[-1].name, zones[-1].start, zones[-1].end + headroom)
    return zones


def x86_frames(ram: int, frame_size: int = 4096, *, lowmem: int | None = None, headroom: int = 0) -> FrameAllocator:
    """The frame allocator of an x86 PC (see x86_zones): page tables from ZONE_NORMAL on a
    native 32-bit kernel, ZONE_DMA32 on x86-64; user pages from the highest zone."""
    return FrameAllocator(ram + headroom, frame_size, zones=x86_zones(ram, lowmem=lowmem, headroom=headroom),
                          kernel_zone="Normal" if lowmem is not None else "DMA32")
