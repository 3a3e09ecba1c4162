"""The plain-Python peers the benchmarks time, each as a whole process of its own:

  peers.py readlines FILE    read the file's lines and do nothing (binary mode: the faster)
  peers.py pysim FILE        a straightforward simulator of a lackey trace (LRU memory of 64
                             frames, 64-entry fully associative LRU TLB, 4 KiB pages); prints
                             its counts as JSON
  peers.py parseint FILE     parse one address per line with int(x, 0)
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict


def readlines(path: str) -> None:
    with open(path, "rb") as f:
        for _ in f:
            pass


def parseint(path: str) -> None:
    with open(path) as f:
        for line in f:
            int(line, 0)


def pysim(path: str, frames: int = 64, tlb_entries: int = 64, shift: int = 12) -> dict:
    """The same rules as elfvm: LRU memory, LRU fully associative TLB, an eviction drops the
    page's TLB entry, dirty write-back, first-touch vs swap-in; every page a record touches is
    one reference, a size of 0 counts as 1 byte."""
    mem: OrderedDict[int, bool] = OrderedDict()        # page -> dirty, least recently used first
    tlb: OrderedDict[int, None] = OrderedDict()
    swapped: set[int] = set()
    refs = hits = first = swapins = evictions = dirty_evictions = 0
    with open(path) as f:
        for line in f:
            if line.startswith("==") or not line.strip():
                continue
            kind, rest = line.split()
            a, s = rest.split(",")
            addr, size = int(a, 16), int(s) or 1
            write = kind == "S" or kind == "M"
            for page in range(addr >> shift, ((addr + size - 1) >> shift) + 1):
                refs += 1
                if page in tlb:
                    hits += 1
                    tlb.move_to_end(page)
                else:
                    if page not in mem:
                        if page in swapped:
                            swapins += 1
                        else:
                            first += 1
                        if len(mem) >= frames:
                            victim, dirty = mem.popitem(last=False)
                            evictions += 1
                            dirty_evictions += dirty
                            swapped.add(victim)
                            tlb.pop(victim, None)
                        mem[page] = False
                    tlb[page] = None
                    if len(tlb) > tlb_entries:
                        tlb.popitem(last=False)
                if write:
                    mem[page] = True
                mem.move_to_end(page)
    return {"references": refs, "first-touch": first, "swap-in": swapins, "evictions": evictions,
            "dirty_evictions": dirty_evictions, "tlb_hits": hits}


def main(argv: list[str]) -> int:
    what, path = argv
    if what == "readlines":
        readlines(path)
    elif what == "parseint":
        parseint(path)
    elif what == "pysim":
        print(json.dumps(pysim(path)))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
