"""ELF reading, as the kernel reads it.

The kernel's ELF loader looks at very little of a file: the first BINPRM_BUF_SIZE (256) bytes,
zero-padded when the file is shorter, interpreted as an Elf32_Ehdr whatever EI_CLASS says
(fs/exec.c prepare_binprm + fs/compat_binfmt_elf.c), and then the program-header table read from
e_phoff. Everything here goes through pyelftools' structure definitions (`ELFStructs`), so we
parse exactly the bytes the kernel parses, and garbage in the fields the kernel ignores
(EI_CLASS, EI_DATA, EI_VERSION, e_version ...) does not stop us either.

Sections and symbols, which the kernel never reads, are read the same way (pyelftools'
Elf32_Shdr and Elf32_Sym), lazily and only when a renderer asks for them.
"""


import mmap
import os
from dataclasses import dataclass
from functools import cached_property

from elftools.elf.structs import ELFStructs

BINPRM_BUF_SIZE = 256
ELF_MAGIC = b"\x7fELF"

ET_EXEC, ET_DYN = 2, 3
EM_386, EM_486, EM_X86_64 = 3, 6, 62
PT_NULL, PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_SHLIB, PT_PHDR, PT_TLS = range(8)
PT_GNU_STACK = 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
SHDR_SIZE = 40                  # sizeof(Elf32_Shdr)
SYM_SIZE = 16                   # sizeof(Elf32_Sym)
SHT_NOBITS, SHF_ALLOC, SHN_XINDEX = 8, 2, 0xFFFF

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


@dataclass(frozen=True, repr=False, eq=False)
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


@dataclass(frozen=True, repr=False, eq=False)
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


@dataclass(frozen=True, repr=False)
class Section:
    """A section header: name, address, size, SHF_ALLOC and SHT_NOBITS."""

    name: str
    addr: int
    size: int
    alloc: bool
    nobits: bool


@dataclass(frozen=True, repr=False, eq=False)
class Symbol:
    """A symbol table entry: name, value, size and its STT_ type."""

    name: str
    value: int
    size: int
    kind: str        # STT_FUNC, STT_OBJECT, STT_TLS ...


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

    # --- what only people (not the kernel) look at -----------------------------------
    def shdr(self, n: int):
        """Section header `n` (pyelftools' Elf32_Shdr), or None when it is not inside the file."""
        h = self.ehdr
        off = h.e_shoff + n * h.e_shentsize
        raw = self.read_at(off, SHDR_SIZE)
        return _structs().Elf_Shdr.parse(raw) if len(raw) == SHDR_SIZE else None

    def cstring(self, offset: int) -> str:
        """The NUL-terminated string at `offset` ('' outside the file or without its NUL)."""
        end = self.data.find(b"\0", offset) if 0 <= offset < self.size else -1
        return self.data[offset:end].decode("utf-8", errors="replace") if end > 0 else ""

    @cached_property
    def _section_headers(self) -> list[tuple[str, object]]:
        """(name, pyelftools' Elf32_Shdr) of each section header: e_shnum entries of
        e_shentsize at e_shoff (0: section 0's sh_size, as ELFFile counts), names from the
        e_shstrndx table (SHN_XINDEX: section 0's sh_link). An entry outside the file ends the
        list; a name outside the file or without its NUL is empty."""
        h = self.ehdr
        first = self.shdr(0) if h.e_shoff and h.e_shentsize >= SHDR_SIZE else None
        if first is None:
            return []
        strndx = h.e_shstrndx if h.e_shstrndx != SHN_XINDEX else first["sh_link"]
        strtab = self.shdr(strndx)
        out = []
        for i in range(h.e_shnum or first["sh_size"]):
            sh = self.shdr(i)
            if sh is None:
                break
            out.append((self.cstring(strtab["sh_offset"] + sh["sh_name"]) if strtab is not None else "", sh))
        return out

    @cached_property
    def sections(self) -> list[Section]:
        """The section-header table, read as the program headers are (pyelftools' Elf32_Shdr).
        Only the headers are read: ELFFile's import and its per-type section objects cost more
        than a whole layout."""
        return [Section(name, s["sh_addr"], s["sh_size"], bool(s["sh_flags"] & SHF_ALLOC),
                        s["sh_type"] in ("SHT_NOBITS", SHT_NOBITS)) for name, s in self._section_headers]

    @cached_property
    def symbols(self) -> list[Symbol]:
        """The defined functions, objects, TLS and untyped symbols of `.symtab` (else `.dynsym`),
        as ELFFile's iter_symbols() gives them (the last section of that name, pyelftools'
        Elf32_Sym entries, names from the linked string table), without ELFFile: its import
        (DWARF and all) costs more than predicting a whole address space. A table ELFFile
        would reject (not a symbol table, a bad entry size) or one running past the file ends
        the list there."""
        out: list[Symbol] = []
        heads = self._section_headers
        for want in (".symtab", ".dynsym"):
            found = [s for name, s in heads if name == want]
            if not found:
                continue
            tab = found[-1]
            size, step = tab["sh_size"], tab["sh_entsize"]
            if tab["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM", "SHT_SUNW_LDYNSYM") or step <= 0 or size % step:
                return out
            strings = heads[tab["sh_link"]][1]["sh_offset"] if tab["sh_link"] < len(heads) else None
            parse = _structs().Elf_Sym.parse
            for i in range(size // step):
                raw = self.read_at(tab["sh_offset"] + i * step, SYM_SIZE)
                if len(raw) < SYM_SIZE or strings is None:
                    return out
                sym = parse(raw)
                kind = sym["st_info"]["type"]
                name = self.cstring(strings + sym["st_name"])
                if name and kind in ("STT_FUNC", "STT_OBJECT", "STT_TLS", "STT_NOTYPE") \
                        and sym["st_shndx"] != "SHN_UNDEF":
                    out.append(Symbol(name, sym["st_value"], sym["st_size"], kind))
            if out:
                break
        return out

    def sections_in(self, start: int, end: int) -> list[str]:
        """Names of allocated sections whose addresses overlap [start, end) (unrelocated)."""
        return [s.name for s in self.sections
                if s.alloc and s.size and s.addr < end and start < s.addr + s.size and s.name]
