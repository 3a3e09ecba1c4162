"""The machine under the MMU model: its frame allocator and how much RAM its paging format
reaches. `translate` and the emulator build the same machine (elfvm.mmu.mmu, elfvm.emu.state);
the kernel half's model (elfvm.mmu.kernel_half) is imported only for a native i386 kernel."""

from __future__ import annotations

from elfvm.phys.frames import FrameAllocator, x86_frames


def machine_frames(geom, profile, ram: int, *, headroom: int = 0) -> FrameAllocator:
    """The frame allocator of the machine `translate` predicts for and the emulator runs on: one
    allocator, one order, so one exec image gets the same frames in both. A native 32-bit kernel
    keeps page tables in lowmem, below its direct map's end (KernelLayout.lowmem_bytes). The
    kernel half's model is imported only for that profile (the emulator's start-up)."""
    lowmem = None
    if profile.name == "linux-i386":
        from elfvm.mmu.kernel_half import KernelLayout

        lowmem = KernelLayout(profile.page_offset, geom.fmt == "pae", ram).lowmem_bytes
    return x86_frames(ram, geom.page_size, lowmem=lowmem, headroom=headroom)


def ram_limit(geom) -> int:
    """The most RAM a kernel on this paging format can use: 4 GiB without PAE (HIGHMEM4G; the
    entries hold 32-bit frames), 64 GiB with it (HIGHMEM64G), MAX_PHYSMEM_BITS = 46 on x86-64."""
    return {"i386": 4 << 30, "generic": 4 << 30, "pae": 64 << 30}.get(geom.fmt, 1 << 46)
