"""The TLB (translation lookaside buffer): its shape, and what it buys (effective access time).

The TLB state itself (entries, LRU stamps, flushes, INVLPG) lives in the compiled reference loop
of `elfvm.sim.paging_core`, which the trace engine and the emulator share; this module holds the pure
rules around it.

Shape: ``entries`` entries in ``entries / ways`` sets of ``ways`` entries each; a page number
``vpn`` goes to set ``vpn mod sets`` (the low bits of the page number, as Intel's TLBs index
them); LRU within a set. ``ways == entries`` is fully associative (one set), ``ways == 1`` is
direct-mapped. A split TLB (an ITLB for instruction fetches beside the DTLB) has this shape
twice. With ASIDs (Intel's PCIDs) entries are tagged with their address space and survive a
context switch; without them a CR3 load flushes the TLB.

Effective access time, as the lecture defines it ("translation cost with TLB"): a TLB hit costs
the TLB look-up and one memory access; on a miss the page-table walk, one memory access per level,
runs in parallel with the TLB look-up ("if not, wait for normal memory translation (parallel)"),
then the access itself:

    hit  = tlb_ns + mem_ns                     (20 + 100 = 120 ns)
    miss = (walk_levels + 1) * mem_ns          (lecture, one level: 200 ns)
    EAT  = h * hit + (1 - h) * miss            (0.95 * 120 + 0.05 * 200 = 124 ns)
"""


from dataclasses import dataclass


class TlbError(ValueError):
    pass


@dataclass(repr=False, eq=False)
class TlbGeometry:
    """A TLB's shape: entries and ways (entries // ways sets)."""

    entries: int                 # 0: no TLB at all (every reference walks)
    ways: int

    @property
    def sets(self) -> int:
        return self.entries // self.ways if self.entries else 1

    @property
    def fully_associative(self) -> bool:
        return self.ways == self.entries

    def set_of(self, vpn: int) -> int:
        return vpn % self.sets

    def describe(self) -> str:
        if not self.entries:
            return "no TLB"
        if self.fully_associative:
            return f"{self.entries} entries, fully associative"
        return f"{self.entries} entries, {self.sets} sets x {self.ways} ways"


def tlb_geometry(entries: int, ways: int | None = None) -> TlbGeometry:
    """Validate a TLB shape; `ways` None means fully associative."""
    if entries < 0:
        raise TlbError(f"--tlb-entries {entries}: cannot be negative")
    if entries == 0:
        return TlbGeometry(0, 1)
    w = entries if ways is None else ways
    if w <= 0:
        raise TlbError(f"--tlb-ways {w}: must be at least 1")
    if w > entries or entries % w:
        raise TlbError(f"--tlb-ways {w}: must divide --tlb-entries {entries}")
    return TlbGeometry(entries, w)


def access_costs(tlb_ns: float, mem_ns: float, walk_levels: int) -> tuple[float, float]:
    """(hit, miss) cost in ns of one memory reference, as the lecture counts them."""
    return tlb_ns + mem_ns, (walk_levels + 1) * mem_ns


def effective_access_ns(hit_ratio: float, tlb_ns: float, mem_ns: float, walk_levels: int) -> float:
    """EAT = h * (tlb + mem) + (1 - h) * (levels + 1) * mem; lecture: 124 ns at h = 0.95."""
    hit, miss = access_costs(tlb_ns, mem_ns, walk_levels)
    return round(hit_ratio * hit + (1.0 - hit_ratio) * miss, 6)
