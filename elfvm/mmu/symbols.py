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

    def section_at(self, addr: int) -> str | None:
        a = (addr - self.bias) & 0xFFFFFFFF
        for s in self._sections:
            if s.addr <= a < s.addr + s.size:
                return s.name
        return None

    def symbol_at(self, addr: int) -> str | None:
        a = (addr - self.bias) & 0xFFFFFFFF
        i = bisect.bisect_right(self._addrs, a) - 1
        if i < 0:
            return None
        # prefer a sized symbol that contains the address among those at the same value
        s = self._syms[i]
        off = a - s.value
        return s.name if off == 0 else f"{s.name}+{off:#x}"

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
