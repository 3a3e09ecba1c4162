"""The address space as a list of bands, top (high addresses) to bottom, for pictures.

Both the SVG and the terminal diagram draw these: one band per /proc/PID/maps line, a gap band
for every unmapped hole (drawn with a broken axis, since a 4 KiB page and a 3 GiB hole must both
stay legible), and the kernel half above TASK_SIZE.
"""

from __future__ import annotations

from dataclasses import dataclass

from elfvm.kernel.process import ExecResult
from elfvm.mm.maps import proc_maps
from elfvm.units import human_size  # noqa: F401  (re-exported for the renderers)

FOUR_GIB = 1 << 32

# Colour classes by kind of memory (the SVG's palette and the diagram's styles use these names).
PALETTE = {
    "text": "#4e79a7", "rodata": "#a0cbe8", "data": "#f28e2b", "bss": "#ffbe7d",
    "interp": "#59a14f", "heap": "#e15759", "stack": "#b07aa1", "vdso": "#9c755f",
    "vvar": "#bab0ac", "anon": "#d4a6c8", "gap": "#ffffff", "kernel": "#79706e",
}


@dataclass(frozen=True)
class Band:
    start: int
    end: int
    cls: str                 # a PALETTE key
    title: str               # e.g. "[stack]" or "hello_pie"
    perms: str = ""
    detail: str = ""         # sections, or what the gap / kernel region is

    @property
    def size(self) -> int:
        return self.end - self.start


def _cls(result: ExecResult, line) -> str:
    first = line.parts[0]
    if first.special:
        return "vdso" if first.kind == "vdso" else "vvar"
    if line.name == "[stack]":
        return "stack"
    if line.name == "[heap]":
        return "heap"
    owner = first.origin[0] if first.origin else ""
    if owner == "interp":
        return "interp"
    if first.file is None:
        return "bss" if first.kind == "bss" else "anon"
    if "x" in line.perms:
        return "text"
    return "data" if "w" in line.perms else "rodata"


def layout_bands(result: ExecResult, kernel_regions: list[tuple[int, int, str, str]] | None = None) -> list[Band]:
    """Bands from 4 GiB down to 0: kernel half, mappings and the holes between them."""
    from elfvm.kernel.provenance import vma_sections
    import os

    task_size = result.profile.task_size
    bands: list[Band] = []
    if kernel_regions:
        for start, end, name, detail in sorted(kernel_regions, reverse=True):
            bands.append(Band(start, end, "kernel", name, "", detail))
    elif task_size < FOUR_GIB:
        bands.append(Band(task_size, FOUR_GIB, "kernel", "kernel space",
                          "", f"above TASK_SIZE {task_size:#x}: no access for a 32-bit task"))
    cursor = task_size
    for line in reversed(proc_maps(result.mm)):
        if line.end < cursor:
            bands.append(Band(line.end, cursor, "gap", "unmapped", "", human_size(cursor - line.end)))
        secs = []
        for p in line.parts:
            secs += [s for s in vma_sections(result, p) if s not in secs]
        title = os.path.basename(line.name) if line.name.startswith("/") else (line.name or "anonymous")
        bands.append(Band(line.start, line.end, _cls(result, line), title, line.perms, " ".join(secs)))
        cursor = line.start
    if cursor > 0:
        bands.append(Band(0, cursor, "gap", "unmapped", "", human_size(cursor)))
    return bands


def markers(result: ExecResult) -> list[tuple[int, str]]:
    """Addresses worth an arrow: brk, esp, the entry point, mmap_base."""
    mm = result.mm
    out = [(result.stack.esp, "esp"), (mm.start_brk, "brk"), (result.eip, "eip")]
    if mm.mmap_base:
        out.append((mm.mmap_base, "mmap_base"))
    return [(a, n) for a, n in out if a]
