"""ELF reading, as the kernel reads it.

The kernel's ELF loader looks at very little of a file: the first BINPRM_BUF_SIZE (256) bytes,
zero-padded when the file is shorter, interpreted as an Elf32_Ehdr whatever EI_CLASS says
(fs/exec.c prepare_binprm + fs/compat_binfmt_elf.c), and then the program-header table read from
e_phoff. Everything here goes through pyelftools' structure definitions (`ELFStructs`), so we
parse exactly the bytes the kernel parses, and garbage in the fields the kernel ignores
(EI_CLASS, EI_DATA, EI_VERSION, e_version ...) does not stop us either.

Sections and symbols, which the kernel never reads, are read the same way (pyelftools'
Elf32_Shdr and Elf32_Sym), lazily and only when a renderer asks for them (elfvm.elf.sections,
imported then: a program run never creates their records).
"""


import mmap
import os
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from elftools.elf.structs import ELFStructs

if TYPE_CHECKING:
    from elfvm.elf.sections import Section, Symbol

BINPRM_BUF_SIZE = 256
ELF_MAGIC = b"\x7fELF"

ET_EXEC, ET_DYN = 2, 3
EM_386, EM_486, EM_X86_64 = 3, 6, 62
PT_NULL, PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_SHLIB, PT_PHDR, PT_TLS = range(8)
PT_GNU_STACK = 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4

PT_NAMES = {
    0: "NULL", 1: "LOAD", 2: "DYNAMIC", 3: "INTERP", 4: "NOTE", 5: "SHLIB", 6: "PHDR", 7: "TLS",
    0x6474E550: "GNU_EH_FRAME", 0x6474E551: "GNU_STACK", 0x6474E552: "GNU_RELRO",
    0x6474E553: "GNU_PROPERTY",
}

_STRUCTS = None


def _structs() -> ELFStructs:
    """pyelftools' little-endian ELF32 layouts, with raw integers for the typed fields."""
    global _STRUCTS
    if _STRUCTS is None:
        s = ELFStructs(little_endian=True, elfclass=32)
        s.create_basic_structs()
        # Unknown e_type/e_machine/p_type values must parse too: pyelftools maps known numbers to
        # names and passes unknown ones through; we convert both back to numbers below.
        s.create_advanced_structs(e_type="ET_EXEC", e_machine="EM_386", e_ident_osabi="ELFOSABI_SYSV")
        _STRUCTS = s
    return _STRUCTS


def _num(value, enum: dict) -> int:
    return value if isinstance(value, int) else enum[value]


@dataclass(repr=False, eq=False)
class Ehdr:
    """The Elf32_Ehdr fields the kernel looks at, as raw integers."""

    ident: bytes
    e_type: int
    e_machine: int
    e_entry: int
    e_phoff: int
    e_phentsize: int
    e_phnum: int
    e_shoff: int
    e_shentsize: int
    e_shnum: int
    e_shstrndx: int

    @property
    def has_magic(self) -> bool:
        return self.ident[:4] == ELF_MAGIC

    @property
    def elf_class(self) -> int:
        return self.ident[4]


@dataclass(repr=False, eq=False)
class Phdr:
    """One Elf32_Phdr, raw integers; `index` is its position in the table."""

    index: int
    p_type: int
    p_offset: int
    p_vaddr: int
    p_paddr: int
    p_filesz: int
    p_memsz: int
    p_flags: int
    p_align: int

    @property
    def type_name(self) -> str:
        return PT_NAMES.get(self.p_type, f"{self.p_type:#x}")

    @property
    def label(self) -> str:
        return f"{self.type_name}[{self.index}]"


def parse_ehdr(buf: bytes) -> Ehdr:
    """Parse the Elf32_Ehdr from the kernel's zero-padded 256-byte buffer (bprm->buf)."""
    from elftools.elf.enums import ENUM_E_MACHINE, ENUM_E_TYPE

    buf = buf[:BINPRM_BUF_SIZE].ljust(BINPRM_BUF_SIZE, b"\0")
    # e_ident bytes 4..15 are never checked by the kernel; give pyelftools valid ones so that
    # its enum adapters accept the header, and keep the real bytes in `ident`.
    normal = buf[:4] + b"\x01\x01\x01" + bytes(9) + buf[16:]
    h = _structs().Elf_Ehdr.parse(normal)
    return Ehdr(ident=buf[:16], e_type=_num(h.e_type, ENUM_E_TYPE),
                e_machine=_num(h.e_machine, ENUM_E_MACHINE), e_entry=h.e_entry,
                e_phoff=h.e_phoff, e_phentsize=h.e_phentsize, e_phnum=h.e_phnum,
                e_shoff=h.e_shoff, e_shentsize=h.e_shentsize, e_shnum=h.e_shnum,
                e_shstrndx=h.e_shstrndx)


def parse_phdrs(table: bytes) -> list[Phdr]:
    """Parse a program-header table (a multiple of 32 bytes) with pyelftools' Elf32_Phdr."""
    from elftools.elf.enums import ENUM_P_TYPE_BASE

    st = _structs().Elf_Phdr
    out = []
    for i in range(len(table) // 32):
        p = st.parse(table[i * 32:(i + 1) * 32])
        out.append(Phdr(i, _num(p.p_type, ENUM_P_TYPE_BASE), p.p_offset, p.p_vaddr, p.p_paddr,
                        p.p_filesz, p.p_memsz, p.p_flags, p.p_align))
    return out


class ElfFile:
    """An ELF file opened the way execve opens it: the header buffer and positional reads.

    `read_at` mirrors kernel_read(): it returns fewer bytes at EOF, which the loader's checks
    turn into ENOEXEC/EIO exactly where the kernel does.
    """

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            # mmap, not read(): a multi-gigabyte file costs nothing until a page is looked at.
            size = os.fstat(f.fileno()).st_size
            self.data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        self.size = len(self.data)
        st = os.stat(path)
        self.st_dev, self.st_ino, self.st_mode = st.st_dev, st.st_ino, st.st_mode

    def read_at(self, offset: int, size: int) -> bytes:
        return self.data[offset:offset + size] if offset < self.size else b""

    @cached_property
    def ehdr(self) -> Ehdr:
        return parse_ehdr(self.data[:BINPRM_BUF_SIZE])

    def phdrs(self) -> list[Phdr]:
        h = self.ehdr
        return parse_phdrs(self.read_at(h.e_phoff, h.e_phnum * 32))

    # --- what only people (not the kernel) look at: elfvm.elf.sections, imported when asked
    @cached_property
    def _section_headers(self) -> list[tuple[str, object]]:
        from elfvm.elf.sections import section_headers

        return section_headers(self, _structs())

    @cached_property
    def sections(self) -> "list[Section]":
        """The section-header table (elfvm.elf.sections.read_sections)."""
        from elfvm.elf.sections import read_sections

        return read_sections(self._section_headers)

    @cached_property
    def symbols(self) -> "list[Symbol]":
        """The defined symbols of `.symtab`, else `.dynsym` (elfvm.elf.sections.read_symbols)."""
        from elfvm.elf.sections import read_symbols

        return read_symbols(self, self._section_headers, _structs())

    def sections_in(self, start: int, end: int) -> list[str]:
        """Names of allocated sections whose addresses overlap [start, end) (unrelocated)."""
        return [s.name for s in self.sections
                if s.alloc and s.size and s.addr < end and start < s.addr + s.size and s.name]
