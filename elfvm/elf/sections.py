"""Section headers and symbols: what only people (not the kernel) look at in an ELF file.

Read as elfvm.elf.reader reads the program headers, through pyelftools' structure definitions
(Elf32_Shdr, Elf32_Sym), from an `ElfFile`'s bytes. `ElfFile.sections` and `ElfFile.symbols`
import this module when first asked (layout's and translate's renderers, a crash's symbol): a
program run never creates these records.
"""


from dataclasses import dataclass

SHDR_SIZE = 40                  # sizeof(Elf32_Shdr)
SYM_SIZE = 16                   # sizeof(Elf32_Sym)
SHT_NOBITS, SHF_ALLOC, SHN_XINDEX = 8, 2, 0xFFFF


@dataclass(repr=False)
class Section:
    """A section header: name, address, size, SHF_ALLOC and SHT_NOBITS."""

    name: str
    addr: int
    size: int
    alloc: bool
    nobits: bool


@dataclass(repr=False, eq=False)
class Symbol:
    """A symbol table entry: name, value, size and its STT_ type. One per entry, built once per
    file and only read, never hashed: not frozen (cheaper to create, class and instances)."""

    name: str
    value: int
    size: int
    kind: str        # STT_FUNC, STT_OBJECT, STT_TLS ...


def shdr(elf, structs, n: int):
    """Section header `n` (pyelftools' Elf32_Shdr), or None when it is not inside the file."""
    h = elf.ehdr
    off = h.e_shoff + n * h.e_shentsize
    raw = elf.read_at(off, SHDR_SIZE)
    return structs.Elf_Shdr.parse(raw) if len(raw) == SHDR_SIZE else None


def cstring(elf, offset: int) -> str:
    """The NUL-terminated string at `offset` ('' outside the file or without its NUL)."""
    end = elf.data.find(b"\0", offset) if 0 <= offset < elf.size else -1
    return elf.data[offset:end].decode("utf-8", errors="replace") if end > 0 else ""


def section_headers(elf, structs) -> list[tuple[str, object]]:
    """(name, pyelftools' Elf32_Shdr) of each section header: e_shnum entries of
    e_shentsize at e_shoff (0: section 0's sh_size, as ELFFile counts), names from the
    e_shstrndx table (SHN_XINDEX: section 0's sh_link). An entry outside the file ends the
    list; a name outside the file or without its NUL is empty."""
    h = elf.ehdr
    first = shdr(elf, structs, 0) if h.e_shoff and h.e_shentsize >= SHDR_SIZE else None
    if first is None:
        return []
    strndx = h.e_shstrndx if h.e_shstrndx != SHN_XINDEX else first["sh_link"]
    strtab = shdr(elf, structs, strndx)
    out = []
    for i in range(h.e_shnum or first["sh_size"]):
        sh = shdr(elf, structs, i)
        if sh is None:
            break
        out.append((cstring(elf, strtab["sh_offset"] + sh["sh_name"]) if strtab is not None else "", sh))
    return out


def read_sections(heads: list[tuple[str, object]]) -> list[Section]:
    """The section-header table, read as the program headers are (pyelftools' Elf32_Shdr).
    Only the headers are read: ELFFile's import and its per-type section objects cost more
    than a whole layout."""
    return [Section(name, s["sh_addr"], s["sh_size"], bool(s["sh_flags"] & SHF_ALLOC),
                    s["sh_type"] in ("SHT_NOBITS", SHT_NOBITS)) for name, s in heads]


def read_symbols(elf, heads: list[tuple[str, object]], structs) -> list[Symbol]:
    """The defined functions, objects, TLS and untyped symbols of `.symtab` (else `.dynsym`),
    as ELFFile's iter_symbols() gives them (the last section of that name, pyelftools'
    Elf32_Sym entries, names from the linked string table), without ELFFile: its import
    (DWARF and all) costs more than predicting a whole address space. A table ELFFile
    would reject (not a symbol table, a bad entry size) or one running past the file ends
    the list there."""
    out: list[Symbol] = []
    for want in (".symtab", ".dynsym"):
        found = [s for name, s in heads if name == want]
        if not found:
            continue
        tab = found[-1]
        size, step = tab["sh_size"], tab["sh_entsize"]
        if tab["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM", "SHT_SUNW_LDYNSYM") or step <= 0 or size % step:
            return out
        strings = heads[tab["sh_link"]][1]["sh_offset"] if tab["sh_link"] < len(heads) else None
        parse = structs.Elf_Sym.parse
        for i in range(size // step):
            raw = elf.read_at(tab["sh_offset"] + i * step, SYM_SIZE)
            if len(raw) < SYM_SIZE or strings is None:
                return out
            sym = parse(raw)
            kind = sym["st_info"]["type"]
            name = cstring(elf, strings + sym["st_name"])
            if name and kind in ("STT_FUNC", "STT_OBJECT", "STT_TLS", "STT_NOTYPE") \
                    and sym["st_shndx"] != "SHN_UNDEF":
                out.append(Symbol(name, sym["st_value"], sym["st_size"], kind))
        if out:
            break
    return out
