"""Paging geometries: how a linear address is split into table indices and a page offset.

* ``i386``   -- 32-bit paging (Intel SDM vol. 3A, 4.3): 10/10/12, 4-byte entries, CR3 -> page
  directory -> page table; a PDE with PS=1 maps a 4 MiB page when CR4.PSE=1. No NX bit.
* ``pae``    -- PAE paging (SDM 4.4): 2/9/9/12, 8-byte entries, CR3 -> a 32-byte PDPT of 4 entries;
  a PDE with PS=1 maps 2 MiB; bit 63 is XD/NX when IA32_EFER.NXE=1.
* ``x86-64`` -- 4-level paging (SDM 4.5): 9/9/9/9/12, 48-bit canonical linear addresses; PDPTE
  with PS=1 maps 1 GiB, PDE with PS=1 maps 2 MiB. What this machine's MMU does for an i386
  (compat) task: its 32-bit addresses are zero-extended, so PML4 index 0 and PDPT index 0..3.
* ``custom`` -- any split from ``--bits`` (e.g. ``22,10`` or ``12,10,10``; the last field is the
  page offset), as in the lecture's exercises. Entries use the i386 bit layout, 4 bytes wide.
"""


from dataclasses import dataclass


class GeometryError(ValueError):
    pass


@dataclass(repr=False, eq=False)
class Geometry:
    """A paging geometry: the levels' index bits, entry size and names."""

    name: str
    level_bits: tuple[int, ...]        # top level first
    offset_bits: int
    entry_size: int                    # bytes per table entry
    level_names: tuple[str, ...]       # the entry names, top level first (PDE, PTE ...)
    table_names: tuple[str, ...]       # what each level's table is called
    large_levels: tuple[int, ...]      # levels whose entries may map a large page (PS=1)
    nx: bool                           # has an execute-disable bit
    fmt: str                           # entry format: i386 | pae | x86-64 | generic
    phys_bits: int = 32                # physical address width the entries can express

    @property
    def levels(self) -> int:
        return len(self.level_bits)

    @property
    def va_bits(self) -> int:
        return sum(self.level_bits) + self.offset_bits

    @property
    def page_size(self) -> int:
        return 1 << self.offset_bits

    @property
    def shifts(self) -> tuple[int, ...]:
        """Bit position of each level's index in the linear address."""
        out, s = [], self.va_bits
        for b in self.level_bits:
            s -= b
            out.append(s)
        return tuple(out)

    def large_page_size(self, level: int) -> int:
        return 1 << self.shifts[level]

    def entries_per_table(self, level: int) -> int:
        return 1 << self.level_bits[level]

    def table_bytes(self, level: int) -> int:
        return self.entries_per_table(level) * self.entry_size

    @property
    def max_linear(self) -> int:
        return (1 << self.va_bits) - 1

    def split(self, linear: int) -> tuple[tuple[int, ...], int]:
        """(indices top level first, page offset)."""
        idx = tuple((linear >> s) & ((1 << b) - 1) for s, b in zip(self.shifts, self.level_bits))
        return idx, linear & (self.page_size - 1)

    def check_linear(self, linear: int) -> None:
        """A linear address the geometry can express (x86-64: 48-bit canonical, SDM 3.3.7.1)."""
        if self.fmt == "x86-64":
            if linear < 0 or linear >= 1 << 64:
                raise GeometryError(f"{linear:#x} is not a 64-bit address")
            top = linear >> 47
            if top not in (0, (1 << 17) - 1):
                raise GeometryError(f"{linear:#x} is not canonical (bits 63:47 must all equal bit 47)")
            return
        if linear < 0 or linear > self.max_linear:
            raise GeometryError(f"{linear:#x} does not fit in the {self.va_bits}-bit linear address "
                                f"space of --mmu {self.name}")

    def describe(self) -> str:
        parts = "/".join(str(b) for b in self.level_bits + (self.offset_bits,))
        return f"{self.name} ({parts}, {self.page_size} B pages, {self.entry_size}-byte entries)"


I386 = Geometry("i386", (10, 10), 12, 4, ("PDE", "PTE"), ("page directory", "page table"),
                (0,), False, "i386", 32)
PAE = Geometry("pae", (2, 9, 9), 12, 8, ("PDPTE", "PDE", "PTE"),
               ("page-directory-pointer table", "page directory", "page table"), (1,), True, "pae", 52)
X86_64 = Geometry("x86-64", (9, 9, 9, 9), 12, 8, ("PML4E", "PDPTE", "PDE", "PTE"),
                  ("PML4", "page-directory-pointer table", "page directory", "page table"),
                  (1, 2), True, "x86-64", 52)
GEOMETRIES = {"i386": I386, "pae": PAE, "x86-64": X86_64}


def parse_bits(text: str) -> tuple[tuple[int, ...], int]:
    """'12,10,10' -> ((12, 10), 10): level bits (top first) and the page-offset bits."""
    try:
        fields = [int(x) for x in text.replace("/", ",").split(",") if x.strip()]
    except ValueError:
        raise GeometryError(f"--bits {text!r}: expected comma-separated bit counts, e.g. 12,10,10") from None
    if len(fields) < 2:
        raise GeometryError(f"--bits {text!r}: need at least one index field and the page offset")
    if any(b <= 0 for b in fields):
        raise GeometryError(f"--bits {text!r}: every field must be at least 1 bit")
    if sum(fields) > 64:
        raise GeometryError(f"--bits {text!r}: {sum(fields)} bits is more than 64")
    return tuple(fields[:-1]), fields[-1]


def custom_geometry(text: str) -> Geometry:
    levels, offset = parse_bits(text)
    n = len(levels)
    names = tuple(f"L{i + 1}E" for i in range(n)) if n > 2 else (("PDE", "PTE") if n == 2 else ("PTE",))
    tables = tuple(f"level-{i + 1} table" for i in range(n))
    return Geometry("custom", levels, offset, 4, names, tables, tuple(range(n - 1)), False, "generic", 32)


def get_geometry(name: str, bits: str | None = None) -> Geometry:
    if name == "custom":
        if not bits:
            raise GeometryError("--mmu custom needs --bits, e.g. --bits 12,10,10")
        return custom_geometry(bits)
    if bits:
        raise GeometryError(f"--bits only goes with --mmu custom (not {name})")
    try:
        return GEOMETRIES[name]
    except KeyError:
        raise GeometryError(f"unknown --mmu {name!r}; choose i386, pae, x86-64 or custom") from None
