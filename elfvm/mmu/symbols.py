"""Sections and symbols of the ELF images mapped in an address space, at their run-time addresses.

A VMA that came from an ELF image (its file, or the anonymous bss of a PT_LOAD) belongs to that
image; its run-time address minus the image's load bias is the link-time address that the section
headers and the symbol table use.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from elfvm.elf.reader import PT_LOAD, PT_TLS, ElfFile


@dataclass
class Image:
    """One ELF image in memory: the file and its load bias (AT_BASE for the interpreter)."""

    path: str
    elf: ElfFile
    bias: int

    def __post_init__(self):
        syms = [s for s in self.elf.symbols if s.kind in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE")
                and s.value and not s.name.startswith("$")]
        syms.sort(key=lambda s: (s.value, s.kind != "STT_FUNC" and s.kind != "STT_OBJECT", s.name))
        self._syms = syms
        self._addrs = [s.value for s in syms]
        self._by_name = {}
        for s in self.elf.symbols:
            if s.kind in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE", "STT_TLS"):
                self._by_name.setdefault(s.name, s)
        self._sections = [s for s in self.elf.sections if s.alloc and s.size and s.name != ".tbss"]
        # the section of each stretch between two section edges (the first in header order
        # that holds it), for a bisect instead of a scan
        self._sec_edges = sorted({e for s in self._sections for e in (s.addr, s.addr + s.size)})
        self._sec_names = [self._first_section_at(e) for e in self._sec_edges]

    def _first_section_at(self, a: int) -> str | None:
        for s in self._sections:
            if s.addr <= a < s.addr + s.size:
                return s.name
        return None

    def section_at(self, addr: int) -> str | None:
        i = bisect.bisect_right(self._sec_edges, (addr - self.bias) & 0xFFFFFFFF) - 1
        return self._sec_names[i] if i >= 0 else None

    def symbol_at(self, addr: int) -> str | None:
        a = (addr - self.bias) & 0xFFFFFFFF
        i = bisect.bisect_right(self._addrs, a) - 1
        if i < 0:
            return None
        # prefer a sized symbol that contains the address among those at the same value
        s = self._syms[i]
        off = a - s.value
        return s.name if off == 0 else f"{s.name}+{off:#x}"

    def labels_over(self, lo: int, hi: int) -> tuple[str | None, str | None, int] | None:
        """(section, nearest symbol name, its run-time address) that hold for every address of
        [lo, hi) -- a page -- or None when a section edge or a symbol lies inside it. Then
        `section_at(a)` is the section and `symbol_at(a)` the name plus `a - address`."""
        a, b = lo - self.bias, hi - 1 - self.bias
        if a < 0 or b > 0xFFFFFFFF:
            return None
        for s in self._sections:
            if a < s.addr <= b or a < s.addr + s.size <= b:
                return None
        i = bisect.bisect_right(self._addrs, a) - 1
        if i + 1 < len(self._addrs) and self._addrs[i + 1] <= b:
            return None
        if i < 0:
            return self.section_at(lo), None, 0
        return self.section_at(lo), self._syms[i].name, self._syms[i].value + self.bias

    def label_stretches(self, lo: int, hi: int) -> list[tuple[int, str | None, str | None, int]]:
        """[lo, hi) cut where the section or the nearest symbol changes: (start, section,
        symbol name, its run-time address) per stretch, as labels_over() gives them."""
        a, b = lo - self.bias, hi - self.bias
        cuts = {e for e in self._sec_edges if a < e < b}
        i = bisect.bisect_right(self._addrs, a)
        while i < len(self._addrs) and self._addrs[i] < b:
            cuts.add(self._addrs[i])
            i += 1
        out = []
        for c in sorted(cuts | {a}):
            labels = self.labels_over(c + self.bias, c + self.bias + 1)
            if labels is None:                     # pragma: no cover - every cut is a stretch
                return []
            out.append((c + self.bias, *labels))
        return out

    def lookup(self, name: str):
        return self._by_name.get(name)

    def tls_offset(self) -> int | None:
        """glibc's TLS offset of this (first, main-program) module for i386 variant II:
        the block sits `offset` bytes below the thread pointer (_dl_determine_tlsoffset)."""
        for ph in self.elf.phdrs():
            if ph.p_type == PT_TLS:
                align = max(ph.p_align, 1)
                firstbyte = (-(ph.p_vaddr & (align - 1))) & (align - 1)
                return -(-(ph.p_memsz - firstbyte) // align) * align + firstbyte
        return None

    def first_load_vaddr(self) -> int:
        loads = [p for p in self.elf.phdrs() if p.p_type == PT_LOAD]
        return loads[0].p_vaddr if loads else 0
