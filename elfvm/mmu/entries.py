"""Paging-structure entries bit by bit, as the Intel SDM vol. 3A lays them out.

Tables 4-4..4-6 (32-bit paging), 4-8..4-11 (PAE) and 4-14..4-19 (4-level paging):

    bit 0  P     present                  bit 5  A    accessed
    bit 1  R/W   writable                 bit 6  D    dirty (leaf entries only)
    bit 2  U/S   user-accessible          bit 7  PS   page size (in a PDE/PDPTE; PAT in a PTE)
    bit 3  PWT   write-through            bit 8  G    global (leaf entries; CR4.PGE)
    bit 4  PCD   cache disable            bit 63 XD/NX execute-disable (PAE, 4-level; EFER.NXE)
    bits 9-11 are ignored by the MMU (Linux keeps _PAGE_SPECIAL, _PAGE_SOFT_DIRTY... there).

The frame (or next table) address sits in bits 12 and up: 31:12 for 32-bit paging, up to
MAXPHYADDR-1 (at most 51) for PAE and 4-level paging. A 4 MiB PSE page keeps physical bits
31:22 in entry bits 31:22 and bits 39:32 in entry bits 20:13 (PSE-36); a 2 MiB / 1 GiB page
keeps its address in bits 51:21 / 51:30, with PAT in bit 12.

The PAE PDPTE is special (SDM 4.4.1, table 4-8): only P, PWT and PCD are defined; bits 1, 2,
5-8 and 63 are reserved, so there is no R/W, U/S or NX at that level.
"""


import functools

from dataclasses import dataclass

P, RW, US, PWT, PCD, A, D, PS, G = (1 << i for i in range(9))
PAT_PTE = 1 << 7
PAT_LARGE = 1 << 12
NX = 1 << 63
SOFTW1 = 1 << 9          # Linux: _PAGE_SPECIAL
SOFTW3 = 1 << 11         # Linux: _PAGE_SOFT_DIRTY

FLAG_ORDER = (("P", P), ("RW", RW), ("US", US), ("PWT", PWT), ("PCD", PCD), ("A", A), ("D", D),
              ("PS", PS), ("G", G))

# Linux's protection bits (arch/x86/include/asm/pgtable_types.h).
_PAGE_TABLE = P | RW | US | A | D          # user page-table entries (pmd_populate, pgd_populate ...)
_KERNPG_TABLE = P | RW | A | D             # kernel page-table entries
PAGE_KERNEL = P | RW | A | D | G           # + NX where supported
PAGE_KERNEL_RO = P | A | D | G
PAGE_KERNEL_EXEC = P | RW | A | D | G
PAGE_KERNEL_LARGE = PAGE_KERNEL | PS
PAGE_KERNEL_NOCACHE = PAGE_KERNEL | PCD | PWT   # ioremap / set_fixmap_nocache (UC-)


def frame_mask(fmt: str, leaf_shift: int, large: bool, phys_bits: int) -> int:
    """The entry bits that hold the address of the frame / next table."""
    top = (1 << (32 if fmt in ("i386", "generic") else phys_bits)) - 1
    return top & ~((1 << leaf_shift) - 1) if large else top & ~0xFFF


def entry_address(fmt: str, value: int, large: bool, page_shift: int, page_size: int) -> int:
    """The physical address an entry points at (a table, a 4 KiB frame or a large frame)."""
    if fmt == "generic":
        return value & 0xFFFFFFFF & ~((1 << page_shift) - 1 if large else page_size - 1)
    if fmt == "i386":
        if large:          # 4 MiB PSE page, PSE-36 high bits in 20:13
            return (value & 0xFFC00000) | ((value >> 13) & 0xFF) << 32
        return value & 0xFFFFF000
    mask = ((1 << 52) - 1)
    if large:
        return value & mask & ~((1 << page_shift) - 1)
    return value & mask & ~0xFFF


def make_entry(fmt: str, addr: int, flags: int, large: bool = False) -> int:
    """Encode an entry: `addr` (table or frame address) | flags (NX only where it exists)."""
    if fmt in ("i386", "generic"):
        if flags & NX:
            raise ValueError("32-bit paging has no NX bit")
        if fmt == "i386" and large and addr >> 32:
            return (addr & 0xFFC00000) | ((addr >> 32) & 0xFF) << 13 | flags | PS
        if addr >> 32:
            raise ValueError(f"{addr:#x} does not fit a 32-bit entry")
    return addr | flags | (PS if large else 0)


@dataclass(repr=False, eq=False)
class EntryBits:
    """A decoded entry: the flags that are defined at its level and the address it holds."""

    value: int
    level: str
    flags: tuple[str, ...]
    address: int
    large: bool

    def text(self) -> str:
        if not self.value & P:
            return "not present" if not self.value else f"not present ({self.value:#x}: software bits)"
        what = "frame" if self.large or self.level in ("PTE",) else "table"
        return f"{' '.join(self.flags)} {what}={self.address:#x}"


@functools.lru_cache(maxsize=8192)      # a pure function of an entry value: page tables repeat them
def decode(fmt: str, level_name: str, value: int, *, leaf: bool, page_shift: int, page_size: int) -> EntryBits:
    """Decode `value` as the entry `level_name`; `leaf` means it maps a page (PTE or PS=1)."""
    if fmt == "pae" and level_name == "PDPTE":
        names = [n for n, b in (("P", P), ("PWT", PWT), ("PCD", PCD)) if value & b]
        return EntryBits(value, level_name, tuple(names), value & ((1 << 52) - 1) & ~0xFFF, False)
    names = []
    for n, b in FLAG_ORDER:
        if not value & b:
            continue
        if b == PS and level_name == "PTE":
            n = "PAT"
        if b == D and not leaf:
            continue            # ignored in entries that reference a table
        if b == G and not leaf:
            continue
        names.append(n)
    if leaf and level_name != "PTE" and value & PAT_LARGE and fmt != "generic":
        names.append("PAT")
    if fmt in ("pae", "x86-64") and value & NX:
        names.append("NX")
    large = leaf and level_name != "PTE"
    return EntryBits(value, level_name, tuple(names),
                     entry_address(fmt, value, large, page_shift, page_size), large)


def is_reserved_violation(fmt: str, level_name: str, value: int, nxe: bool) -> str | None:
    """Reserved bits that would make the walk raise #PF with RSVD=1 (SDM 4.4.1, 4.5.4)."""
    if fmt == "pae" and level_name == "PDPTE" and value & P:
        bad = value & (RW | US | A | D | PS | G | NX)
        if bad:
            return f"reserved bits {bad:#x} set in a PAE PDPTE"
    if fmt in ("pae", "x86-64") and value & NX and not nxe:
        return "bit 63 set while IA32_EFER.NXE=0"
    if fmt == "x86-64" and level_name == "PML4E" and value & PS:
        return "PS is reserved in a PML4E"
    return None
