"""Physical memory: the frames the MMU's page tables point at (below the MMU, above nothing).

`PhysicalMemory` is a sparse byte store of a given RAM size; `FrameAllocator` hands out frames
deterministically (the same run gives the same frames) and knows the ranges an x86 PC and Linux
keep for themselves (see `frames.x86_reserved_ranges`).
"""

import importlib

# name -> the module that defines it; imported on first use (PEP 562), so the trace engine,
# which needs only the frame allocator, does not load RAM mapping (ctypes, mmap) or swap
# (tempfile) at start-up
_WHERE = {
    **dict.fromkeys(("FrameAllocator", "KernelImage", "OutOfMemory", "Reserved", "Zone", "x86_frames",
                     "x86_reserved_ranges", "x86_zones"), "elfvm.phys.frames"),
    **dict.fromkeys(("MappedMemory", "PhysicalAccessError", "PhysicalMemory"), "elfvm.phys.memory"),
    "SwapDevice": "elfvm.phys.swap",
    "parse_size": "elfvm.units",
}

__all__ = ["PhysicalMemory", "MappedMemory", "SwapDevice", "PhysicalAccessError", "FrameAllocator", "OutOfMemory", "Reserved",
           "Zone", "KernelImage", "x86_frames", "x86_zones", "x86_reserved_ranges", "parse_size"]


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(where), name)
