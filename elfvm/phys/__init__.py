"""Physical memory: the frames the MMU's page tables point at (below the MMU, above nothing).

`PhysicalMemory` is a sparse byte store of a given RAM size; `FrameAllocator` hands out frames
deterministically (the same run gives the same frames) and knows the ranges an x86 PC and Linux
keep for themselves (see `frames.x86_reserved_ranges`).
"""

from elfvm.phys.frames import (FrameAllocator, KernelImage, OutOfMemory, Reserved, Zone, x86_frames,
                               x86_reserved_ranges, x86_zones)
from elfvm.phys.memory import MappedMemory, PhysicalAccessError, PhysicalMemory
from elfvm.phys.swap import SwapDevice
from elfvm.units import parse_size

__all__ = ["PhysicalMemory", "MappedMemory", "SwapDevice", "PhysicalAccessError", "FrameAllocator", "OutOfMemory", "Reserved",
           "Zone", "KernelImage", "x86_frames", "x86_zones", "x86_reserved_ranges", "parse_size"]
