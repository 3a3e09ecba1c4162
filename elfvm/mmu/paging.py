"""Page tables in simulated physical memory, and the hardware walk from CR3.

`PageTables` writes real entry values into `PhysicalMemory` frames (tables are allocated from the
`FrameAllocator` like the kernel's pgd_alloc / pte_alloc) and `walk()` reads them back exactly as
the MMU does (Intel SDM vol. 3A 4.3, 4.4.2, 4.5.4): CR3 gives the top table, each level's index
selects an entry, a clear P bit ends the walk with a not-present fault, PS=1 ends it with a large
page. The walk's records and the SDM 4.6 access checks are elfvm.mmu.walk's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from elfvm.mmu import entries as E
from elfvm.mmu.geometry import Geometry
from elfvm.phys import FrameAllocator, PhysicalMemory

if TYPE_CHECKING:
    from elfvm.mmu.walk import Step, Walk


_US_RW = E.US | E.RW
_PDPTE_RESERVED = E.RW | E.US | E.A | E.D | E.PS | E.G | E.NX   # set: the walk stops there


class PageTables:
    """The paging structures of one address space, rooted at `cr3`."""

    def __init__(self, geom: Geometry, mem: PhysicalMemory, frames: FrameAllocator, *, nxe: bool,
                 what: str = "pgd"):
        self.geom = geom
        self.mem = mem
        self.frames = frames
        self.nxe = nxe and geom.nx
        self.cr3 = self.alloc_table(0, what)
        self._shifts = geom.shifts
        self._masks = tuple((1 << b) - 1 for b in geom.level_bits)
        self._esize = geom.entry_size
        self._large = frozenset(geom.large_levels)
        # where an entry that points at a lower table keeps its address (entry_address, not large)
        self._tmask = E.entry_address(geom.fmt, (1 << (8 * geom.entry_size)) - 1, False, 0, geom.page_size)
        # walk_fast's: entries read as words (entry i of RAM), which levels may map large pages
        self._word = mem.word_reader(geom.entry_size)
        self._put = mem.word_writer(geom.entry_size)
        self._wshift = geom.entry_size.bit_length() - 1
        self._large_at = tuple(lv in self._large for lv in range(geom.levels))

    # --- building ---------------------------------------------------------------------
    def alloc_table(self, level: int, what: str) -> int:
        g = self.geom
        nbytes = g.table_bytes(level)
        frames = max(1, -(-nbytes // g.page_size))
        addr = self.frames.alloc(f"{what} ({g.table_names[level]})", "kernel", frames)
        self.mem.clear(addr, frames * g.page_size)
        return addr

    def table_flags(self, level: int, user: bool) -> int:
        """Flags of an entry that points at a lower table (Linux's pmd/pud/pgd_populate)."""
        if self.geom.fmt == "pae" and level == 0:
            return E.P          # arch/x86/mm/pgtable.c pud_populate(): PDPTEs only get _PAGE_PRESENT
        return E._PAGE_TABLE if user else E._KERNPG_TABLE

    def entry_addr(self, table: int, level: int, linear: int) -> int:
        return table + ((linear >> self._shifts[level]) & self._masks[level]) * self._esize

    def read_entry(self, addr: int) -> int:
        return self._word(addr >> self._wshift)

    def write_entry(self, addr: int, value: int) -> None:
        self._put(addr >> self._wshift, value)

    def table_for(self, linear: int, level: int, user: bool, what: str = "page table") -> int:
        """The table of `level` that covers `linear`, allocating missing tables on the way."""
        read, esize, shifts, masks = self.mem.read_uint, self._esize, self._shifts, self._masks
        table = self.cr3
        for lv in range(level):
            ea = table + ((linear >> shifts[lv]) & masks[lv]) * esize
            v = read(ea, esize)
            if not v & E.P:
                new = self.alloc_table(lv + 1, what)
                self.write_entry(ea, E.make_entry(self.geom.fmt, new, self.table_flags(lv, user)))
                table = new
            else:
                if v & E.PS and lv in self._large:
                    raise ValueError(f"{linear:#x} is inside a large page at level {self.geom.level_names[lv]}")
                table = v & self._tmask
        return table

    def map(self, linear: int, phys: int, flags: int, *, level: int | None = None, user: bool = True,
            what: str = "page table") -> None:
        """Install a leaf entry for `linear` -> `phys` at `level` (default: the last level; an
        upper level makes a large page with PS=1)."""
        g = self.geom
        last = g.levels - 1
        level = last if level is None else level
        if level != last and level not in self._large:
            raise ValueError(f"{g.level_names[level]} cannot map a large page in {g.name}")
        if not self.nxe:
            flags &= ~E.NX
        table = self.table_for(linear, level, user, what)
        self.write_entry(self.entry_addr(table, level, linear),
                         E.make_entry(g.fmt, phys, flags, large=level != last))

    def map_ptes(self, linears: list[int], phys: list[int], flags: int, *, user: bool = True) -> None:
        """Leaf entries `linears` -> `phys` (the same entries `map` writes) for pages of one
        last-level table, a fault-around window: the table is found once, not per page, and
        the entries are encoded once (make_entry's checks, then frame | flags)."""
        if not linears:
            return
        g = self.geom
        last = g.levels - 1
        shift = self._shifts[last]
        span = shift + g.level_bits[last]          # what one last-level table maps
        if any((a ^ linears[0]) >> span for a in linears):
            raise ValueError("map_ptes: the pages are not in one page table")
        if not self.nxe:
            flags &= ~E.NX
        E.make_entry(g.fmt, max(phys), flags)     # raises where make_entry would for any
        table = self.table_for(linears[0], last, user)
        put, mask = self._put, self._masks[last]
        first = table >> self._wshift
        for a, fr in zip(linears, phys):
            put(first + ((a >> shift) & mask), fr | flags)

    def leaf_entries(self, start: int, end: int) -> list[int]:
        """The raw last-level entries of the pages [start, end) of one last-level table (a
        fault-around window), read at once; zeros when the table does not exist."""
        last = self.geom.levels - 1
        shift = self._shifts[last]
        if start >= end:
            return []
        if (start ^ (end - 1)) >> (shift + self.geom.level_bits[last]):
            raise ValueError("leaf_entries: the pages are not in one page table")
        n = ((end - 1) >> shift) - (start >> shift) + 1
        ea = self.pte_addr(start)
        if ea is None:
            return [0] * n
        return memoryview(self.mem.read(ea, n * self._esize)).cast("Q" if self._esize == 8 else "I").tolist()

    # --- the kernel's side: last-level entries by linear address -------------------------
    def pte_addr(self, linear: int, alloc: bool = False) -> int | None:
        """pte_offset_map(): where the last-level entry of `linear` lives; None when a table on
        the way is missing (with `alloc`, the missing tables are allocated: pte_alloc)."""
        last = self.geom.levels - 1
        if alloc:
            return self.entry_addr(self.table_for(linear, last, True), last, linear)
        read, esize, shifts, masks, tmask = self.mem.read_uint, self._esize, self._shifts, self._masks, self._tmask
        table = self.cr3
        for lv in range(last):
            v = read(table + ((linear >> shifts[lv]) & masks[lv]) * esize, esize)
            if not v & E.P:
                return None
            table = v & tmask
        return table + ((linear >> shifts[last]) & masks[last]) * esize

    def read_pte(self, linear: int) -> int:
        """The raw last-level entry of `linear` (0 when its table does not exist)."""
        ea = self.pte_addr(linear)
        return 0 if ea is None else self.read_entry(ea)

    def write_pte(self, linear: int, value: int) -> None:
        """set_pte(): a raw last-level entry (a present mapping or a swap entry)."""
        self.write_entry(self.pte_addr(linear, alloc=True), value)

    def pte_frame(self, value: int) -> int:
        """The frame a present last-level entry maps (entry_address's bits: _tmask)."""
        return value & self._tmask

    def ptes(self, start: int, end: int):
        """walk_page_range(): (linear, entry) for every non-zero last-level entry in
        [start, end), in address order, skipping the tables that do not exist."""
        for linear, _ea, v in self._ptes(start, end):
            yield linear, v

    def pte_entries(self, start: int, end: int):
        """ptes() with where each entry lives: (linear, entry address, entry), for callers
        that rewrite them (zap_pte_range: no second walk per page)."""
        return self._ptes(start, end)

    def _ptes(self, start: int, end: int):
        """Level by level: the upper levels give the tables below, in address order (a
        whole address space has a few dozen); the last level's entries are yielded from this
        one frame, not through a generator per level (~10^4 entries: exit_mmap, the report's
        resident pages). Each table's entries in range are read at once."""
        g = self.geom
        last = g.levels - 1
        esize = self._esize
        fmt = "Q" if esize == 8 else "I"
        tables = [(self.cr3, 0)]                 # (table, linear address it starts at)
        for lv in range(last + 1):
            shift, mask = self._shifts[lv], self._masks[lv]
            span = 1 << shift
            below = []
            for table, base in tables:
                first = max(start, base)
                i = (first >> shift) & mask if first > base else 0
                stop = i + min(mask + 1 - i, -(-(end - base - i * span) // span))   # entries below `end`
                if stop <= i:
                    continue
                raw = memoryview(self.mem.read(table + i * esize, (stop - i) * esize)).cast(fmt)
                if lv == last:
                    for j, v in enumerate(raw, i):
                        if v:
                            yield base + j * span, table + j * esize, v
                else:
                    for j, v in enumerate(raw, i):
                        if v & E.P:
                            below.append((E.entry_address(g.fmt, v, False, 0, g.page_size), base + j * span))
            tables = below

    def tables(self) -> list[int]:
        """Every table frame of this address space, the top one last (free_pgtables)."""
        return list(self._tables(self.cr3, 0)) + [self.cr3]

    def _tables(self, table: int, lv: int):
        g = self.geom
        if lv == g.levels - 1:
            return
        n = self._masks[lv] + 1                      # the table's entries, read at once
        raw = memoryview(self.mem.read(table, n * self._esize)).cast("Q" if self._esize == 8 else "I")
        for v in raw:
            if v & E.P and not (lv in self._large and v & E.PS):
                sub = E.entry_address(g.fmt, v, False, 0, g.page_size)
                yield from self._tables(sub, lv + 1)
                yield sub

    # --- the hardware walk -------------------------------------------------------------
    def walk(self, linear: int) -> Walk:
        """The walk as translate shows it: every level's Step, the rights and the outcome."""
        from elfvm.mmu.walk import Step, Walk     # records the emulator's walk_fast never builds

        g = self.geom
        fmt, names, esize = g.fmt, g.level_names, self._esize
        last = g.levels - 1
        read = self.mem.read_uint
        table = self.cr3
        steps = []
        user = writable = True
        nx = False
        for lv in range(g.levels):
            index = (linear >> self._shifts[lv]) & self._masks[lv]
            ea = table + index * esize
            v = read(ea, esize)
            present = bool(v & E.P)
            leaf = lv == last or (present and lv in self._large and bool(v & E.PS))
            steps.append(Step(names[lv], index, table, ea, v, present, leaf))
            if not present:
                return Walk(linear, tuple(steps), None, 1 << self._shifts[lv], None, user, writable, nx)
            rsvd = E.is_reserved_violation(fmt, names[lv], v, self.nxe)
            if rsvd:
                return Walk(linear, tuple(steps), None, 1 << self._shifts[lv], None, user, writable, nx, rsvd)
            if not (fmt == "pae" and lv == 0):          # PAE PDPTEs carry no rights
                user = user and bool(v & E.US)
                writable = writable and bool(v & E.RW)
                nx = nx or bool(v & E.NX)
            if leaf:
                size = 1 << self._shifts[lv]
                base = E.entry_address(fmt, v, lv != last, self._shifts[lv], g.page_size)
                return Walk(linear, tuple(steps), base + (linear & (size - 1)), size, base,
                            user, writable, nx)
            table = E.entry_address(fmt, v, False, 0, g.page_size)
        raise AssertionError("unreachable")

    def walk_fast(self, linear: int) -> tuple[int, int, bool, bool, bool]:
        """The same walk without the record: (page base or -1, level reached, user, writable, nx).
        Every CPU TLB fill walks (~50,000 for a large program): entries are read as words of
        RAM, the rights are the AND (U/S, R/W) and OR (NX) of the entries walked so far; the
        next table and a 4 KiB frame are the entry's address bits (_tmask, what entry_address
        gives them), only a large page asks entry_address."""
        word, wshift, shifts, masks = self._word, self._wshift, self._shifts, self._masks
        tmask, large = self._tmask, self._large_at
        pae = self.geom.fmt == "pae"
        last = len(shifts) - 1
        table = self.cr3
        both, either = _US_RW, 0
        for lv in range(last + 1):
            v = word((table >> wshift) + ((linear >> shifts[lv]) & masks[lv]))
            if not v & 1:
                break
            if lv or not pae:
                both &= v
                either |= v
            elif v & _PDPTE_RESERVED:                 # PAE PDPTEs carry no rights
                break
            if lv == last:
                return v & tmask, lv, bool(both & E.US), bool(both & E.RW), bool(either & E.NX)
            if large[lv] and v & E.PS:
                return (E.entry_address(self.geom.fmt, v, True, shifts[lv], self.geom.page_size), lv,
                        bool(both & E.US), bool(both & E.RW), bool(either & E.NX))
            table = v & tmask
        return -1, lv, bool(both & E.US), bool(both & E.RW), bool(either & E.NX)

    def decode(self, step: Step) -> E.EntryBits:
        lv = self.geom.level_names.index(step.level)
        return E.decode(self.geom.fmt, step.level, step.entry, leaf=step.leaf,
                        page_shift=self._shifts[lv], page_size=self.geom.page_size)
